"""The speech worker's settings section (``asr:`` in YAML, ``WORKERS_ASR_*`` in the environment).

Measured effects of these knobs (WER and latency by beam width, niceness, confidence floor) are in
``docs/workers/asr.md`` and ``docs/benchmarks.md``; the descriptions here say what each one does.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from workers.settings import SettingsSection


class AsrSettings(SettingsSection):
    """The speech recognition worker: endpointing, the finals' search and the bounds on each stream."""

    model_config = SettingsConfigDict(env_prefix="WORKERS_ASR_", frozen=True, extra="forbid")
    yaml_section: ClassVar[str] = "asr"

    endpoint_s: float = Field(
        0.8, gt=0, description="Silence (frames without speech, see speech_probability) after speech that ends "
        "a segment: a final is emitted and the next segment starts.")
    max_segment_s: float = Field(30.0, gt=0, description="A segment longer than this is finalised anyway.")
    speech_probability: float = Field(
        0.2, gt=0, le=1, description="Letter probability (1 - blank - space) at which a frame counts as speech "
        "although greedy decoding emits nothing there: such a segment ends in a final that the beam search "
        "decodes, and that is dropped if it finds no word. 1 only counts frames greedy decoding emits a letter in.")
    early_second_pass: bool = Field(
        True, description="The worker starts a final's second pass early_second_pass_after_s into the silence "
        "after its speech, before the endpoint (endpoint_s), and sends that final if no speech came since: "
        "finals come up to endpoint_s - early_second_pass_after_s sooner, for the passes a pause shorter than "
        "the endpoint wastes. Not while the search processes are backlogged (search_backlog).")
    early_second_pass_after_s: float = Field(
        0.5, ge=0, description="Silence after a segment's speech at which the early second pass starts (see "
        "early_second_pass; below 0.3 s it starts at 0.3 s, when the audio it reads is all there). Sooner: "
        "finals a little earlier, but more passes dropped when a speaker pauses inside a phrase (at 0.3 s a "
        "third of them on read speech; at 0.5 s none).")
    energy_speech: bool = Field(
        True, description="With the second pass and the level control on, frames whose energy stands "
        "12 dB above the noise floor (workers/asr/level.py) count as speech although the streaming model emits "
        "nothing there: a soft short word it does not answer still opens a segment, and the second pass's "
        "no-speech rule drops the segment if it was noise.")
    min_word_confidence: float = Field(
        0.0, ge=0, le=1, description="A final's word whose confidence (the mean of its characters' probability "
        "in the model's output) is below this is dropped from the final. 0 keeps every word; a small floor "
        "drops words made up in loud noise, at the cost of softly spoken real ones.")
    no_speech_threshold: float = Field(
        0.6, ge=0, le=1, description="A second-pass final whose decoder gives its no-speech token at least this "
        "probability, and whose text's tokens have a mean log-probability of at most no_speech_logprob, has no "
        "words (Whisper's rule for a window without speech): loud noise the streaming model took for speech. 1 "
        "turns the rule off.")
    no_speech_logprob: float = Field(
        -0.4, le=0, description="See no_speech_threshold: text the decoder is this sure of is kept whatever the "
        "no-speech token's probability.")
    punctuate: bool = Field(
        True, description="Finals carry \"display\": their words with casing and punctuation (\"I was not at "
        "Dallas.\"): the second pass's own text, else the tagger shipped in the model's punctuation/ folder. \"text\" "
        "and the words stay lower case, as WER is measured.")
    level_control: bool = Field(
        True, description="Bring each stream's speech to one level before the streaming model (workers/asr/"
        "level.py: causal, 10 ms blocks; DC removed; quiet speech lifted up to 40 dB, never lifting the noise "
        "floor above -40 dBFS; loud speech turned down). Off: the model hears the input as it comes.")
    second_pass: bool = Field(
        True, description="Finals are re-decoded from the segment's audio by the model's "
        "attention decoder (Whisper tiny.en, in the model's whisper/ folder) in the search processes: the "
        "accurate text, Whisper's own casing and punctuation as display, word times from the streaming model's "
        "alignment; a stream's phrase list holds it to the phrases. Off, or for a model without whisper/: the CTC beam "
        "search with the model's language models.")
    max_stream_s: float = Field(
        3600.0, gt=0, description="Audio one stream may send; the stream is then finalised and further "
        "chunks are dead-lettered (reason stream_ended) until it starts again at seq 0.")
    max_chunk_s: float = Field(2.0, gt=0, description="Longest audio chunk accepted (reason chunk_too_long).")
    beam: int = Field(
        32, ge=0, description="Beam width of the final's CTC beam search with the language models; 0 makes "
        "finals greedy too. Wider is more accurate and slower; partials do not wait for it.")
    partial_beam: int = Field(
        32, ge=0, description="Beam width of the partials' CTC beam search with the language models (the finals' "
        "weights), carried from chunk to chunk in the batch loop; 0 makes partials greedy. Narrower is cheaper "
        "and loses words' onsets (16: the unseen speaker's digits about 0.53 right instead of 0.73).")
    partial_margin: float = Field(
        5.0, gt=0, description="search_margin of the partials' search: it runs in the batch loop, where every "
        "millisecond delays a partial. With partial_prune -6 it costs 0.10 ms a 20 ms frame against 0.26 ms at "
        "the finals' 7 and -8, and read the held-out sets the same to one digit clip in a hundred.")
    partial_prune: float = Field(
        -6.0, le=0, description="beam_prune of the partials' search (see partial_margin).")
    lm_weight: float = Field(0.3, ge=0, description="Weight of the character LM's log-probability in the beam search.")
    lm_bonus: float = Field(1.0, description="Score added per character in the beam search (offsets the LMs' length penalty).")
    beam_prune: float = Field(
        -8.0, le=0, description="A frame's characters below this log-probability are not extended by the beam search.")
    phrase_prune: float = Field(
        -10.0, le=0, description="beam_prune for a final of a stream with a closed phrase list (no [unk]), whose "
        "search also drops search_margin: its few words are cheap to search, and a word's weak start (a "
        "fricative over a phone line, after a pause) must still be tried.")
    word_weight: float = Field(
        0.4, ge=0, description="Weight of the word LM's log-probability, per finished word, when the model "
        "ships one (words.txt.gz); 0 searches with the character LM alone. Too high merges words.")
    unknown_word_penalty: float = Field(
        -5.0, le=0, description="Score added once to a word that leaves the word LM's vocabulary.")
    search_margin: float = Field(
        7.0, gt=0, description="Extensions scoring this far below the best prefix are not tried (speed).")
    search_processes: int = Field(
        2, ge=0, description="Processes running the finals' second pass (or beam search), off the batch loop: a "
        "final is sent when it is done, and the stream's later results wait behind it. Two on 2 cores: at 32 "
        "real-time streams final p95 0.66 s, against 1.05 s with one (partial p95 95 and 81 ms; 2026-12-05, "
        "before the partials' search). 0 runs the search in the batch loop, where it delays every partial of "
        "that batch.")
    search_nice: int = Field(
        0, ge=0, le=19, description="Niceness added to the search processes: above 0 the batch loop (partials) "
        "gets the CPU first where both want it, and finals wait longer. At 32 streams on 2 cores (2026-12-07), "
        "3 to 10 gave partial p95 0.15-0.27 s and final p95 1.1-2.5 s, against 0.36-0.53 s and 0.69-1.10 s at 0.")
    second_pass_batch: int = Field(
        8, ge=1, description="Finals waiting for the second pass whose audio has the same decoder window (every "
        "segment up to 4 s gets the 7 s one) go to a search process together, up to this many, and its decoder "
        "steps for all of them in one call: ~1.5x the cost of one final for two, ~2.4x for four. A final's text "
        "is the same alone or in a batch. 1 sends each alone.")
    busy_beam: int = Field(
        8, ge=1, description="Beam width of a final searched while search_backlog searches are already waiting "
        "or running: less accurate and cheaper, so a burst of finals does not queue without bound.")
    search_backlog: int = Field(
        4, ge=1, description="Searches waiting or running in the search processes at which a new final is "
        "searched with busy_beam.")
    max_streams: int = Field(
        10_000, ge=1, description="Concurrent streams held; a new stream beyond it is dead-lettered "
        "(reason too_many_streams) instead of evicting a live one.")
