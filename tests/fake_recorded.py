"""Small recorded-speech corpora in their real layouts, for the reader tests: festvox ARCTIC voices, a Kathleen-style
audio folder, speechocean762's Kaldi dirs with ``resource/text-phone``. Audio is generated noise+tone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

# Prompts in ARCTIC's format; words all in CMUdict except "zorblax" (espeak-ng or nothing).
PROMPTS = {
    "arctic_a0001": "Author of the danger trail, Philip Steels, etc.",
    "arctic_a0002": "Not at this particular case, Tom, apologized Whittemore.",
    "arctic_a0003": "For the twentieth time that evening the two men shook hands.",
    "arctic_a0004": "Lord, but I'm glad to see you again, Phil.",
    "arctic_a0005": "Will we ever forget it.",
    "arctic_a0006": "God bless 'em, I hope I'll go on seeing them forever.",
    "arctic_a0007": "And you always want to see it in the superlative degree.",
    "arctic_a0008": "The zorblax was seen at dawn.",
}


def tone(seconds: float = 0.6, rate: int = 16000, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


def festival_prompts(prompts: dict[str, str]) -> str:
    return "".join(f'( {k} "{v}" )\n' for k, v in prompts.items())


def make_arctic_voice(root: Path, voice: str, prompts: dict[str, str], rate: int = 16000, channels: int = 1,
                      labs: dict[str, str] | None = None, extra_wavs: tuple[str, ...] = ()) -> Path:
    """A festvox voice folder ``cmu_us_<voice>_arctic`` with wav/, etc/txt.done.data and optional lab/ files."""
    folder = root / f"cmu_us_{voice}_arctic"
    (folder / "wav").mkdir(parents=True)
    (folder / "etc").mkdir()
    (folder / "etc" / "txt.done.data").write_text(festival_prompts(prompts), encoding="utf-8")
    for i, utt in enumerate([*prompts, *extra_wavs]):
        sf.write(folder / "wav" / f"{utt}.wav", tone(rate=rate, channels=channels, seed=i), rate)
    if labs:
        (folder / "lab").mkdir()
        for utt, phones in labs.items():
            lines = "".join(f"{0.1 * (k + 1):.6f} 125 {p}\n" for k, p in enumerate(phones.split()))
            (folder / "lab" / f"{utt}.lab").write_text(f"separator ;\nnfields 1\n#\n{lines}", encoding="utf-8")
    return folder


def make_kathleen(root: Path, prompts: dict[str, str], takes: int = 2) -> Path:
    """Kathleen's layout: ``data/<prompt>_<take>.{wav,txt}`` at 48 kHz stereo, and ``cmuarctic.data``."""
    (root / "data").mkdir(parents=True)
    (root / "cmuarctic.data").write_text(festival_prompts(prompts), encoding="utf-8")
    for i, (utt, text) in enumerate(prompts.items()):
        for take in range(takes):
            stem = f"{utt}_15927485{i}{take}"
            sf.write(root / "data" / f"{stem}.wav", tone(rate=48000, channels=2, seed=i + take), 48000)
            (root / "data" / f"{stem}.txt").write_text(text + "\n", encoding="utf-8")
    return root


SO_TEXTS = ["WE CALL IT BEAR", "ZERO THREE FIVE ONE", "I LIKE TEA", "THE SUN IS HOT"]
SO_PHONES = {  # text-phone style: per word, ARPAbet with speechocean's stress and position marks
    "WE": "W_B IY0_E", "CALL": "K_B AO0_I L_E", "IT": "IH0_B T_E", "BEAR": "B_B EH0_I R_E",
    "ZERO": "Z_B IH1_I R_I OW0_E", "THREE": "TH_B R_I IY0_E", "FIVE": "F_B AY1_I V_E", "ONE": "W_B AH0_I N_E",
    "I": "AY0_S", "LIKE": "L_B AY1_I K_E", "TEA": "T_B IY0_E", "THE": "DH_B AH0_E", "SUN": "S_B AH0_I N_E",
    "IS": "IH0_B Z_E", "HOT": "HH_B AA1_I T_E",
}


def make_speechocean(root: Path, speakers: dict[str, list[str]], missing_text_phone: tuple[str, ...] = ()) -> Path:
    """speechocean762's layout: ``train/`` and ``test/`` Kaldi dirs naming ``WAVE/SPEAKERnnnn/<utt>.WAV`` relative
    to the corpus folder, ``resource/text-phone`` and ``resource/lexicon.txt``. ``speakers``: split -> speakers."""
    text_phone, lexicon = [], {}
    for split, spks in speakers.items():
        d = root / split
        d.mkdir(parents=True)
        wav, text, u2s = [], [], []
        for s, spk in enumerate(spks):
            (root / "WAVE" / f"SPEAKER{spk}").mkdir(parents=True, exist_ok=True)
            for k, sentence in enumerate(SO_TEXTS):
                utt = f"{spk}{k:05d}"
                sf.write(root / "WAVE" / f"SPEAKER{spk}" / f"{utt}.WAV", tone(seed=s * 10 + k), 16000)
                wav.append(f"{utt}\tWAVE/SPEAKER{spk}/{utt}.WAV\n")
                text.append(f"{utt}\t{sentence}\n")
                u2s.append(f"{utt} {spk}\n")
                for w, word in enumerate(sentence.split()):
                    if utt not in missing_text_phone:
                        text_phone.append(f"{utt}.{w}\t{SO_PHONES[word]}\n")
                    lexicon[word] = " ".join(p[:-2] for p in SO_PHONES[word].split())
        (d / "wav.scp").write_text("".join(wav))
        (d / "text").write_text("".join(text))
        (d / "utt2spk").write_text("".join(u2s))
    (root / "resource").mkdir()
    (root / "resource" / "text-phone").write_text("".join(text_phone))
    (root / "resource" / "lexicon.txt").write_text("".join(f"{w}\t{p}\n" for w, p in sorted(lexicon.items())))
    return root
