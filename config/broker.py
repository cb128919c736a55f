"""The embedded broker of `make serve`: kombu's filesystem transport, a folder of message files.

Real worker processes and the web process share it on one machine with no broker server; the
embedded default without it stays eager, and production uses Redis (settings refuse this one
there: a message taken by a worker that is then killed is gone, where Redis re-delivers it).

What the transport does, read from `kombu/transport/filesystem.py` (kombu 5.7):

- One file per message, named `<monotonic ms>_<uuid>.<queue>.msg`, written to `data_folder_out`
  and taken from `data_folder_in`: one folder for both, or no process sees another's messages.
  The file is created, then written (one small write): a taker listing the folder in between
  would read it empty. The window is microseconds against a 0.1 s poll; not seen here.
- Taking a message moves it out of the folder first. Without `store_processed` it goes to the
  system temp folder (a copy when that is another file system); with it, to our own folder on
  the same file system, a rename that only one taker can win. Acks and prefetch live in the
  taking process only: no visibility timeout, so nothing comes back after a hard kill (a warm
  shutdown puts what was prefetched and unacknowledged back).
- Celery sends a task for a direct queue (ours, and a worker's own `<hostname>.dq2`) to the
  anonymous exchange keyed by the queue's name: a file for that queue, kept until a worker takes
  it, even when no worker has started yet. Exchange bindings, which fanout needs, are JSON files
  in `control_folder`, relative to the working directory unless set.
- It has no server to push messages: each worker polls the folder every `polling_interval`
  (kombu's default, 1 s, would add a second to every stage of a run).
- Fanout works through the bindings file, but auto-delete queues and message TTLs do not: the
  remote-control (pidbox), gossip and event queues of workers that are gone would stay bound and
  collect messages for ever. Settings turn remote control off; scripts/serve.sh starts its
  workers without gossip, mingle and heartbeat events.
"""

from __future__ import annotations

from pathlib import Path

POLLING_INTERVAL_S = 0.1


def filesystem_transport_options(root: Path) -> dict[str, object]:
    """kombu's transport options for a filesystem broker under `root` (created if missing):
    `messages/` (queued), `processed/` (taken; scripts/serve.sh empties it when it starts) and
    `control/` (exchange bindings)."""
    messages, processed, control = (root / name for name in ("messages", "processed", "control"))
    for folder in (messages, processed, control):
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(messages),
        "data_folder_out": str(messages),
        "store_processed": True,
        "processed_folder": str(processed),
        "control_folder": str(control),
        "polling_interval": POLLING_INTERVAL_S,
    }
