"""The lengths of the manifest strings that land in database columns: one number each, used by
the manifest's JSON Schema (intake refuses a longer value, naming the field) and by the model's
column (`validation.models.ModelPackage`). Django-free, so the package format can import it."""

PACKAGE_NAME_MAX_LENGTH = 200
PACKAGE_VERSION_MAX_LENGTH = 64
