"""``lstm-asr download NAME DIR``: fetch a recorded corpus from its official home, check it, and unpack it into the
layout its reader expects.

Each archive is downloaded to ``DIR/.downloads/<file>.part`` and resumed from where it stopped (an HTTP range
request) when run again; a finished download is checked (SHA-256 where one is published, else the size the server
announced) and renamed to ``DIR/.downloads/<file>``; it is unpacked into a temporary folder in ``DIR`` and the
corpus folder renamed into place last, so a folder that is there is complete (a second run skips it).
``--from PATH`` takes the archive from a local file, or a folder that holds it or an unpacked copy: the way to
use a machine without internet (a one-line error says what to fetch from where when the download fails).

Where each corpus lands (``corpus.path`` for its reader):

- ``arctic`` (the seven festvox CMU ARCTIC voices: awb bdl clb jmk ksp rms slt) and ``arctic-<voice>`` (any of
  the 18 voices festvox packs): ``DIR/cmu_arctic/cmu_us_<voice>_arctic/`` (``corpus.type: arctic``, point it at
  ``DIR/cmu_arctic``);
- ``kathleen``: ``DIR/kathleen/`` (``audio_folder`` with ``corpus.prompts: cmuarctic.data``);
- ``speechocean762``: ``DIR/speechocean762/`` (``speechocean762``);
- ``librispeech-<subset>`` (``dev-clean``, ``test-clean``, ``train-clean-100``, ...): ``DIR/LibriSpeech/<subset>/``
  (``librispeech``).

Checksums: the SHA-256 sums of the ARCTIC and LibriSpeech archives are torchaudio's (``torchaudio.datasets
.cmuarctic`` / ``.librispeech``, which verify the same files). OpenSLR publishes none for speechocean762 that we
could check, and Kathleen is GitHub's archive of a branch (its bytes change with every commit): those two are
checked by size only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lstm_asr.errors import LstmAsrError

CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class Archive:
    """One file to fetch and what to take out of it.

    ``marker`` is a path that exists inside the folder to take (how the folder is found, whatever the archive
    wraps it in); ``take`` is the part of that folder that moves to ``DIR/<target>`` (``.``: all of it)."""

    url: str
    sha256: str | None  # None: no published checksum; the size the server announces is checked instead
    marker: str
    target: str
    take: str = "."

    @property
    def file_name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class CorpusDownload:
    name: str
    archives: tuple[Archive, ...]
    corpus_type: str
    corpus_path: str  # relative to DIR: what corpus.path should say
    note: str = ""


_ARCTIC_SHA256 = {  # torchaudio.datasets.cmuarctic._CHECKSUMS
    "aew": "645cb33c0f0b2ce41384fdd8d3db2c3f5fc15c1e688baeb74d2e08cab18ab406",
    "ahw": "024664adeb892809d646a3efd043625b46b5bfa3e6189b3500b2d0d59dfab06c",
    "aup": "2c55bc3050caa996758869126ad10cf42e1441212111db034b3a45189c18b6fc",
    "awb": "d74a950c9739a65f7bfc4dfa6187f2730fa03de5b8eb3f2da97a51b74df64d3c",
    "axb": "dd65c3d2907d1ee52f86e44f578319159e60f4bf722a9142be01161d84e330ff",
    "bdl": "26b91aaf48b2799b2956792b4632c2f926cd0542f402b5452d5adecb60942904",
    "clb": "3f16dc3f3b97955ea22623efb33b444341013fc660677b2e170efdcc959fa7c6",
    "eey": "8a0ee4e5acbd4b2f61a4fb947c1730ab3adcc9dc50b195981d99391d29928e8a",
    "fem": "3fcff629412b57233589cdb058f730594a62c4f3a75c20de14afe06621ef45e2",
    "gka": "dc82e7967cbd5eddbed33074b0699128dbd4482b41711916d58103707e38c67f",
    "jmk": "3a37c0e1dfc91e734fdbc88b562d9e2ebca621772402cdc693bbc9b09b211d73",
    "ksp": "8029cafce8296f9bed3022c44ef1e7953332b6bf6943c14b929f468122532717",
    "ljm": "b23993765cbf2b9e7bbc3c85b6c56eaf292ac81ee4bb887b638a24d104f921a0",
    "lnh": "4faf34d71aa7112813252fb20c5433e2fdd9a9de55a00701ffcbf05f24a5991a",
    "rms": "c6dc11235629c58441c071a7ba8a2d067903dfefbaabc4056d87da35b72ecda4",
    "rxr": "1fa4271c393e5998d200e56c102ff46fcfea169aaa2148ad9e9469616fbfdd9b",
    "slp": "54345ed55e45c23d419e9a823eef427f1cc93c83a710735ec667d068c916abf1",
    "slt": "7c173297916acf3cc7fcab2713be4c60b27312316765a90934651d367226b4ea",
}
ARCTIC_VOICES = ("awb", "bdl", "clb", "jmk", "ksp", "rms", "slt")  # the seven of festvox's CMU ARCTIC page
_LIBRISPEECH_SHA256 = {  # torchaudio.datasets.librispeech._CHECKSUMS
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}


def _arctic_archive(voice: str) -> Archive:
    folder = f"cmu_us_{voice}_arctic"
    return Archive(f"http://festvox.org/cmu_arctic/packed/{folder}.tar.bz2", _ARCTIC_SHA256[voice],
                   marker=f"{folder}/etc/txt.done.data", target=f"cmu_arctic/{folder}", take=folder)


def _catalog() -> dict[str, CorpusDownload]:
    out: dict[str, CorpusDownload] = {
        "arctic": CorpusDownload("arctic", tuple(_arctic_archive(v) for v in ARCTIC_VOICES), "arctic", "cmu_arctic",
                                 "CMU ARCTIC licence: free for any use, keep CMU's notice"),
        "kathleen": CorpusDownload(
            "kathleen",
            (Archive("https://github.com/rhasspy/dataset-voice-kathleen/archive/refs/heads/master.zip", None,
                     marker="cmuarctic.data", target="kathleen"),),
            "audio_folder", "kathleen", "CC0; set corpus.prompts: cmuarctic.data"),
        "speechocean762": CorpusDownload(
            "speechocean762",
            (Archive("https://www.openslr.org/resources/101/speechocean762.tar.gz", None, marker="train/wav.scp",
                     target="speechocean762"),),
            "speechocean762", "speechocean762", "OpenSLR 101, free for any use"),
    }
    for voice in _ARCTIC_SHA256:
        out[f"arctic-{voice}"] = CorpusDownload(f"arctic-{voice}", (_arctic_archive(voice),), "arctic", "cmu_arctic")
    for subset, sha in _LIBRISPEECH_SHA256.items():
        out[f"librispeech-{subset}"] = CorpusDownload(
            f"librispeech-{subset}",
            (Archive(f"https://www.openslr.org/resources/12/{subset}.tar.gz", sha, marker=subset,
                     target=f"LibriSpeech/{subset}", take=subset),),
            "librispeech", "LibriSpeech", "OpenSLR 12, CC BY 4.0")
    return out


CATALOG = _catalog()


def corpus_download(name: str) -> CorpusDownload:
    """The download a name stands for (a one-line error listing the names for an unknown one)."""
    try:
        return CATALOG[name]
    except KeyError:
        short = sorted(n for n in CATALOG if not n.startswith("arctic-"))
        raise LstmAsrError(f"unknown corpus {name!r} to download (known: {', '.join(short)}, arctic-<voice> for "
                           f"one of {', '.join(sorted(_ARCTIC_SHA256))})") from None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _offline_hint(archive: Archive, name: str, dest: Path, reason: str) -> LstmAsrError:
    return LstmAsrError(f"cannot download {archive.url} ({reason}); fetch {archive.file_name} from there on a machine "
                        f"with internet and run: lstm-asr download {name} {dest} --from {archive.file_name}")


def fetch(archive: Archive, downloads: Path, name: str,
          opener: Callable[..., object] = urllib.request.urlopen) -> Path:
    """Download ``archive`` into ``downloads`` (resuming a ``.part`` file), check it, and return the file."""
    final = downloads / archive.file_name
    if final.is_file():
        return final
    downloads.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "lstm-asr", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        response = opener(urllib.request.Request(archive.url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the range starts at the end: the .part file is complete
            response = None
        else:
            raise _offline_hint(archive, name, downloads.parent, f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _offline_hint(archive, name, downloads.parent, str(getattr(exc, "reason", exc))) from None
    total = None
    if response is not None:
        with response:
            resumed = have and getattr(response, "status", 200) == 206
            length = response.headers.get("Content-Length")
            total = (have if resumed else 0) + int(length) if length and length.isdigit() else None
            try:
                with open(part, "ab" if resumed else "wb") as f:
                    while block := response.read(CHUNK):
                        f.write(block)
            except OSError as exc:
                raise LstmAsrError(f"download of {archive.url} broke off ({exc}); run the command again to resume")\
                    from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise LstmAsrError(f"{part}: {size} of {total} bytes arrived; run the command again to resume")
    check(part, archive, shown=final)
    os.replace(part, final)
    return final


def check(path: Path, archive: Archive, shown: Path | None = None) -> None:
    """Compare ``path``'s SHA-256 with the published one (a one-line error on a mismatch; nothing to compare
    when none is published)."""
    if archive.sha256 is None:
        return
    got = sha256_of(path)
    if got != archive.sha256:
        raise LstmAsrError(f"{shown or path}: SHA-256 {got} is not the published {archive.sha256} (a damaged or "
                           "different file; delete it and download again)")


def _safe_members(tar: tarfile.TarFile) -> None:
    tar.extraction_filter = tarfile.data_filter  # no absolute paths, no '..', no links out, no devices


def unpack(archive_file: Path, into: Path) -> None:
    """Unpack a .tar(.gz/.bz2/.xz) or .zip file into ``into``, refusing members that would land outside it."""
    try:
        if zipfile.is_zipfile(archive_file):
            with zipfile.ZipFile(archive_file) as z:
                root = into.resolve()
                for member in z.namelist():
                    dest = (into / member).resolve()
                    if root != dest and root not in dest.parents:
                        raise LstmAsrError(f"{archive_file}: member {member!r} would land outside the folder")
                z.extractall(into)
            return
        with tarfile.open(archive_file) as tar:
            _safe_members(tar)
            tar.extractall(into)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise LstmAsrError(f"{archive_file}: cannot unpack ({exc}); a damaged download? delete it and run again")\
            from None


def find_marked(folder: Path, marker: str, depth: int = 3) -> Path | None:
    """The first folder at ``folder`` or up to ``depth`` levels below it (sorted, breadth first) holding
    ``marker``."""
    level = [folder]
    for _ in range(depth + 1):
        for cand in level:
            if (cand / marker).exists():
                return cand
        level = sorted(c for p in level for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
    return None


def _place(source: Path, target: Path, move: bool) -> None:
    """Put ``source`` at ``target`` in one rename (a copy is made beside ``target`` first when not moving)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if move:
        os.replace(source, target)
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        def link_or_copy(src: str, dst: str) -> None:
            try:
                os.link(src, dst)  # same file system: no second copy of gigabytes of audio
            except OSError:
                shutil.copy2(src, dst)

        shutil.copytree(source, tmp / "x", copy_function=link_or_copy)
        os.replace(tmp / "x", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install(archive: Archive, dest: Path, name: str, source: Path | None,
            opener: Callable[..., object] = urllib.request.urlopen) -> str:
    """Fetch (or take from ``source``) one archive and unpack it to ``dest/<target>``; what was done, in words."""
    target = dest / archive.target
    if target.exists():
        return f"{target}: already there"
    if source is not None and source.is_dir():
        if (source / archive.file_name).is_file():
            source = source / archive.file_name
        else:
            # The folder may be the part to take itself (--from .../cmu_us_bdl_arctic), or hold it at some depth.
            itself = archive.take != "." and source.name == Path(archive.take).name
            found = (find_marked(source.parent, archive.marker, depth=0) if itself else None) \
                or find_marked(source, archive.marker)
            if found is None:
                raise LstmAsrError(f"{source}: neither {archive.file_name} nor an unpacked copy (with "
                                   f"{archive.marker}) is in this folder")
            _place(found / archive.take, target, move=False)
            return f"{target}: copied from {found / archive.take}"
    if source is not None:
        if not source.is_file():
            raise LstmAsrError(f"{source}: no such file or folder")
        if source.name == archive.file_name:
            check(source, archive)  # the official file: it must be the published one
        file = source
    else:
        file = fetch(archive, dest / ".downloads", name, opener)
    tmp = Path(tempfile.mkdtemp(prefix=".unpacking.", dir=dest))
    try:
        unpack(file, tmp)
        found = find_marked(tmp, archive.marker)
        if found is None:
            raise LstmAsrError(f"{file}: no {archive.marker} inside: not the {name} archive")
        _place(found / archive.take, target, move=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return f"{target}: unpacked from {file}"


def download(name: str | CorpusDownload, dest: str | Path, source: str | Path | None = None,
             opener: Callable[..., object] = urllib.request.urlopen) -> list[str]:
    """Install corpus ``name`` under ``dest`` (from ``source`` when given); lines saying what was done, the last
    one naming the recipe keys that read it."""
    spec = name if isinstance(name, CorpusDownload) else corpus_download(name)
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LstmAsrError(f"{dest}: cannot create the folder ({exc.strerror or exc})") from None
    src = Path(source) if source is not None else None
    done = [install(a, dest, spec.name, src, opener) for a in spec.archives]
    note = f" ({spec.note})" if spec.note else ""
    done.append(f"corpus.type: {spec.corpus_type}, corpus.path: {dest / spec.corpus_path}{note}")
    return done
