"""Stage 5: recognition -- files, folders, long recordings and live streams into transcripts: the ``Recognizer``
(a checkpoint or an exported TorchScript file), batch and long-file decoding, decoding and scoring prepared splits
and whole experiments, handwriting files, and the streaming recogniser with end-pointing."""
