"""Driving a run's inference the way the queue would, in-process: plan, then every shard."""

from tests.factories import approved_package
from validation.models import RunShard
from validation.services import runs
from validation.services.shards import shard_execute


def infer(run_id: int, *, deliveries: int = 1, worker: str = "test@worker") -> None:
    """`run_infer`, then each shard `deliveries` times (a second delivery must be a no-op)."""
    for _ in range(deliveries):
        runs.run_infer(run_id=run_id)
        for index in RunShard.objects.filter(run_id=run_id).values_list("index", flat=True):
            shard_execute(run_id=run_id, index=index, worker=worker)


def run_setup(world, *, package_path, manifest, protocol: dict):
    """An approved package (from the factory: no intake smoke test), a freshly imported, sealed
    and granted dataset version, and a protocol: (package, version, protocol), ready for the
    reviewer to start runs."""
    return (approved_package(world, package_path), *granted_version(world, manifest, protocol))


def granted_version(world, manifest, protocol: dict):
    """A freshly imported and sealed dataset version granted to vendor A, and a protocol:
    (version, protocol), for a package approved by the caller."""
    from validation.services.datasets import dataset_create, dataset_grant, dataset_version_import
    from validation.services.protocols import protocol_create

    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    version = dataset_version_import(actor=world.steward, dataset=dataset, source=manifest)
    dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a)
    return version, protocol_create(actor=world.reviewer, name="P", document=protocol)


def start_run(world, *, package_path, manifest, protocol: dict):
    """A queued run of `run_setup`'s package, version and protocol, started by the reviewer (its
    first task is not run: on-commit work in a test transaction never fires)."""
    package, version, protocol_row = run_setup(
        world, package_path=package_path, manifest=manifest, protocol=protocol
    )
    return runs.run_start(
        actor=world.reviewer, package=package, dataset_version=version, protocol=protocol_row
    )
