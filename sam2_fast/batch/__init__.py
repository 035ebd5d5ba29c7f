"""Many videos: :func:`run_batch` tracks every video of a JSON-lines manifest, in this process
(``executor="local"``) or on a Ray cluster (``executor="ray"``); ``sam2-fast batch`` is its
command line.

The manifest (one JSON object per line, described by ``schemas/batch_manifest.schema.json``,
shipped in the package, see :data:`SCHEMA_PATH`)::

    {"id": "cat", "video": "videos/cat.mp4", "prompts": {"0": {"1": {"points": [[210, 350]]}}}}
    {"id": "dog", "video": "frames/dog", "prompts": {"0": {"1": {"box": [10, 20, 200, 220]}},
                                                     "30": {"2": {"mask": "dog_ball.png"}}}}
    {"id": "street", "video": "street.mkv", "prompts": "auto", "max_objects": 8, "model": "sam2.1_hiera_small"}

Every line is checked before any video runs (:func:`load_manifest`); a bad line is reported
with its line number and nothing runs unless ``skip_invalid``.

Each video goes through the streaming engine's public API (:class:`sam2_fast.Sam2`:
``new_video_state`` + ``predict_video_frame`` on frames decoded ahead on a thread by
:func:`sam2_fast.io.sources.iter_source_frames`, PyAV for video files and Pillow for frame
folders, turned upright like ``sam2-fast video`` does; ``Sam2.track(prompts="auto")`` for
``"auto"``). Its outputs, ``OUT/<id>/``, have the layout of ``sam2-fast video``: one DAVIS
palette PNG per tracked frame named like the frame (``00000.png`` ... for a video file), the
COCO-RLE JSON per frame with ``format="rle"``/``"both"``, ``run.json``, ``overlay.mp4`` with
``overlay=True``, and a ``DONE`` marker. They are written into a hidden folder
``OUT/.<id>.partial-XXXX`` and that folder is renamed to ``OUT/<id>`` after ``DONE`` was
written in it, so ``OUT/<id>`` holds either a finished video or (when a user deleted ``DONE``)
something that the next run replaces: a video counts as done only when ``OUT/<id>/DONE``
exists, and a re-run skips exactly those. An attempt that died (process killed, machine lost)
leaves only its hidden partial folder, which the next attempt of that id deletes.

Each finished or failed video appends one line to ``OUT/status.jsonl`` (written by the driver
only; the last line of an id is its latest state); ``OUT/summary.json`` holds the counts of the
last run. ``shard=(i, n)`` runs only the ids with ``crc32(id) % n == i`` and names those files
``status.shard-<i>-of-<n>.jsonl`` / ``summary.shard-<i>-of-<n>.json``, so independent drivers
can share one output folder.

Files: ``manifest.py`` (the manifest: schema, checks, :func:`load_manifest`), ``video.py``
(one video: model cache, tracking, writing, staging and commit: :func:`process_video`),
``runner.py`` (:func:`run_batch`, the local executor, status log, summary),
``ray_executor.py`` (the actor pool).

Ray (``pip install sam2_fast[ray]``): one actor per GPU of the cluster (``workers_per_gpu``
to share a GPU; ``num_workers`` one-CPU actors when there is no GPU or ``device="cpu"``; see
:func:`ray_worker_plan`), each loading a model once per (model, image_size) group; the videos
are sent one at a time to idle actors in group order.
Actors are created with ``max_restarts=-1`` and ``max_task_retries=max_retries``: a worker that
dies is restarted by Ray and its video is run again from scratch (the dead attempt's partial
folder is never renamed into place). Workers read the videos and write the results
**directly** under ``OUT``, which must therefore be a filesystem mounted at the same path on
every node (NFS, Lustre, GPFS, CephFS...; it needs atomic ``rename``, which object-store
mounts such as s3fs lack); the driver checks that every worker sees ``OUT`` before sending work.
"""

from .manifest import (SCHEMA_PATH, ManifestError, ManifestInvalid, VideoJob, auto_prompts_supported,
                       load_manifest, resolve_model)
from .ray_executor import BatchWorker, ray_worker_plan
from .runner import EXIT_CODE_CAP, BatchError, BatchSummary, parse_shard, run_batch
from .video import DONE_MARKER, FAULT_ENV, ModelSpec, OutputOptions, VideoResult, is_done

__all__ = ["run_batch", "load_manifest", "BatchError", "BatchSummary", "BatchWorker", "ManifestError",
           "ManifestInvalid", "ModelSpec", "OutputOptions", "VideoJob", "VideoResult",
           "auto_prompts_supported", "is_done", "parse_shard", "ray_worker_plan", "resolve_model",
           "DONE_MARKER", "EXIT_CODE_CAP", "FAULT_ENV", "SCHEMA_PATH"]
