"""Append-only guards shared by every immutable model: model, queryset and database trigger.

The ORM is not the only door to the database, so each guard here has a twin in SQL
(`append_only_trigger_sql`) installed by migrations on SQLite and PostgreSQL alike.
"""

from django.db import models


class ImmutableRecordError(Exception):
    """Raised when code tries to change or delete a record that the regulation freezes."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableRecordError(f"{self.model.__name__} rows are append-only.")

    def delete(self):
        raise ImmutableRecordError(f"{self.model.__name__} rows are append-only.")

    # bulk_update goes through update(); bulk_create is allowed (it only appends).


class AppendOnlyModel(models.Model):
    """A row that may be inserted once and never changed or deleted."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableRecordError(f"{type(self).__name__} rows are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableRecordError(f"{type(self).__name__} rows are append-only.")


class FreezableQuerySet(models.QuerySet):
    """For rows that freeze at some point (a sealed dataset version, a locked protocol):
    `update()` and `delete()` are refused when any row they would touch is frozen, as the
    model's `FROZEN` condition says; rows not yet frozen change freely (that is how they are
    sealed or locked)."""

    def update(self, **kwargs):
        self._refuse_frozen()
        return super().update(**kwargs)

    def delete(self):
        self._refuse_frozen()
        return super().delete()

    def _refuse_frozen(self) -> None:
        if self.filter(self.model.FROZEN).exists():
            raise ImmutableRecordError(f"A frozen {self.model._meta.verbose_name} cannot change.")


class FreezableModel(models.Model):
    """A row that may change until `FROZEN` (a Q on its stored state) holds; from then on
    `save()`, `delete()` and the queryset's `update()`/`delete()` refuse, and the database
    trigger installed with `install_append_only(frozen_when=...)` refuses UPDATE and DELETE."""

    FROZEN: models.Q
    frozen_message = "This record is frozen and cannot change."

    objects = FreezableQuerySet.as_manager()

    class Meta:
        abstract = True

    def _stored_frozen(self) -> bool:
        return type(self)._base_manager.filter(self.FROZEN, pk=self.pk).exists()

    def save(self, *args, **kwargs):
        if not self._state.adding and self._stored_frozen():
            raise ImmutableRecordError(self.frozen_message)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self._stored_frozen():
            raise ImmutableRecordError(self.frozen_message)
        return super().delete(*args, **kwargs)


def append_only_trigger_sql(
    table: str, *, vendor: str, frozen_when: str | None = None
) -> list[str]:
    """SQL that refuses UPDATE and DELETE on `table` (optionally only where `frozen_when` holds
    for the OLD row, e.g. "OLD.issued_at IS NOT NULL"). Returns statements for `vendor`."""
    name = f"{table}_append_only"
    if vendor == "sqlite":
        when = f" WHEN {frozen_when}" if frozen_when else ""
        return [
            f"CREATE TRIGGER IF NOT EXISTS {name}_upd BEFORE UPDATE ON {table} FOR EACH ROW{when} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;",
            f"CREATE TRIGGER IF NOT EXISTS {name}_del BEFORE DELETE ON {table} FOR EACH ROW{when} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;",
        ]
    if vendor == "postgresql":
        condition = frozen_when or "TRUE"
        return [
            f"""CREATE OR REPLACE FUNCTION {name}_fn() RETURNS trigger AS $$
            BEGIN
              IF {condition} THEN
                RAISE EXCEPTION '{table} is append-only' USING ERRCODE = 'restrict_violation';
              END IF;
              IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
              RETURN NEW;
            END; $$ LANGUAGE plpgsql;""",
            f"DROP TRIGGER IF EXISTS {name} ON {table};",
            f"CREATE TRIGGER {name} BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {name}_fn();",
        ]
    raise NotImplementedError(f"No append-only trigger for database vendor {vendor!r}.")


def drop_append_only_trigger_sql(table: str, *, vendor: str) -> list[str]:
    name = f"{table}_append_only"
    if vendor == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name}_upd;", f"DROP TRIGGER IF EXISTS {name}_del;"]
    return [f"DROP TRIGGER IF EXISTS {name} ON {table};", f"DROP FUNCTION IF EXISTS {name}_fn();"]


def install_append_only(table: str, frozen_when: str | None = None):
    """A migrations.RunPython pair installing/removing the trigger on the current vendor."""
    from django.db import migrations

    def forwards(apps, schema_editor):
        for sql in append_only_trigger_sql(
            table, vendor=schema_editor.connection.vendor, frozen_when=frozen_when
        ):
            schema_editor.execute(sql)

    def backwards(apps, schema_editor):
        for sql in drop_append_only_trigger_sql(table, vendor=schema_editor.connection.vendor):
            schema_editor.execute(sql)

    return migrations.RunPython(forwards, backwards)
