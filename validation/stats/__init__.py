"""The statistics, without Django: metrics with their intervals (`metrics/`), the full metric
set a protocol plans (`evaluation`), acceptance and fairness criteria (`acceptance`), Grad-CAM
agreement with reference ROIs (`localisation`) and the disclosure rule for what leaves the
validation team (`disclosure`)."""
