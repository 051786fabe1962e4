"""Dataset adapters: each public or credentialed chest X-ray dataset, read as it is distributed.

One module per source, and nothing else to edit: a dataset is one file and a test
(docs/extending.md). Each module defines

* ``SOURCE = SourceInfo(...)``: its name (the ``Sample.source`` value it writes, and the
  name ``radrl prepare`` takes), the files and folders it reads under ``--root`` as the
  dataset ships them (``radrl prepare --list`` and its errors print this), and its tasks
  and repeats in the paper's instruction mix (``radrl.data.instructions.build_task_mix``
  reads them). Nothing lists the sources by hand: ``declared()`` finds every module of
  this package that declares ``SOURCE`` (plus the synthetic generator, which makes its
  samples rather than reading a download);
* ``read(root, **options) -> Iterator[Sample | Skip]``: one ``Sample`` per usable image (or
  study), and one ``Skip`` for each row or file it could not use, so that nothing is
  dropped silently; ``radrl prepare`` counts skips by reason and ``--strict`` makes the
  first one fatal. Sources that ship conversations rather than samples (the RadVLM
  instruction JSON) define ``read_conversations`` instead.

Adapters stream: they yield as they read, so preparing MIMIC-CXR never holds the whole
dataset in memory.

``Skip``, ``SourceInfo`` and the discovery (``declared``, ``load_source``) live in ``_declare``
(a helper, not a source: its name starts with ``_``, like ``_files``) and are re-exported here.
"""

from radrl.data.sources._declare import GENERATED, Skip, SourceInfo, declared, load_source

__all__ = ["GENERATED", "Skip", "SourceInfo", "declared", "load_source"]
