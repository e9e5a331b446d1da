"""kdhub-speech: distil separation teachers (SepFormer, Conv-TasNet) into smaller separators on SpeechBrain."""
