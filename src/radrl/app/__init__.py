"""radrl's front door: a checkpoint asked about one radiograph at a time, in Python (``Predictor``), on the command
line (``radrl predict``) and in a browser (``radrl app``). See ``radrl.app.predict``."""

from radrl.app.predict import KNOWN_FINDINGS, FoundBox, Prediction, Predictor, Radiograph, read_radiograph

__all__ = ["KNOWN_FINDINGS", "FoundBox", "Prediction", "Predictor", "Radiograph", "read_radiograph"]
