"""Streaming speech recognition: PCM16 audio chunks on ``asr.audio`` -> partial and final transcripts."""
