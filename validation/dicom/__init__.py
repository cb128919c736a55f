"""Partner image data, without Django: where a dataset comes from (`sources`: folders and
archives staged safely), its manifest CSV (`manifest`), one file through intake (`ingest`: hash,
parse, decode, identity policy, pack), de-identification (`deidentify`, the PS3.15 table in
`basic_profile`, and `splice`, the same decisions applied to the file's bytes), the pixel
pipeline from a DICOM file to a model's input (`pixels`) and the seal (`merkle`)."""
