"""``lstm-asr download``: local archives and folders (--from), checksums, resumed downloads, the offline error."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest
from conftest import run_cli
from fake_recorded import PROMPTS, make_arctic_voice, make_kathleen, make_speechocean

from data_prep.corpora import open_source
from data_prep.download import CATALOG, Archive, CorpusDownload, download, fetch, unpack
from lstm_asr.errors import LstmAsrError
from lstm_asr.recipe import CorpusSection

SOME = dict(list(PROMPTS.items())[:3])


def tar_of(folder: Path, out: Path, arcname: str, mode: str = "w:gz") -> Path:
    with tarfile.open(out, mode) as tar:
        tar.add(folder, arcname=arcname)
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def arctic_spec(url: str, digest: str | None) -> CorpusDownload:
    return CorpusDownload("arctic-zzz", (Archive(url, digest, marker="cmu_us_zzz_arctic/etc/txt.done.data",
                                                 target="cmu_arctic/cmu_us_zzz_arctic", take="cmu_us_zzz_arctic"),),
                          "arctic", "cmu_arctic")


def test_from_a_local_archive_unpacks_into_the_readers_layout(tmp_path):
    make_arctic_voice(tmp_path / "src", "zzz", SOME)
    archive = tar_of(tmp_path / "src" / "cmu_us_zzz_arctic", tmp_path / "cmu_us_zzz_arctic.tar.bz2",
                     "cmu_us_zzz_arctic", "w:bz2")
    spec = arctic_spec("http://example.invalid/cmu_us_zzz_arctic.tar.bz2", sha(archive))
    lines = download(spec, tmp_path / "out", archive)
    voice = tmp_path / "out" / "cmu_arctic" / "cmu_us_zzz_arctic"
    assert (voice / "etc" / "txt.done.data").is_file() and len(list((voice / "wav").glob("*.wav"))) == 3
    assert lines[-1].startswith("corpus.type: arctic, corpus.path:")
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".unpacking")]
    src = open_source("arctic", tmp_path / "out" / "cmu_arctic", CorpusSection(type="arctic", test_share=0.0))
    assert len(src.split("train").items) + len(src.split("dev").items) == 3
    assert "already there" in download(spec, tmp_path / "out", archive)[0]  # a second run skips it


def test_a_damaged_official_archive_is_refused(tmp_path):
    make_arctic_voice(tmp_path / "src", "zzz", SOME)
    archive = tar_of(tmp_path / "src" / "cmu_us_zzz_arctic", tmp_path / "cmu_us_zzz_arctic.tar.bz2",
                     "cmu_us_zzz_arctic", "w:bz2")
    with pytest.raises(LstmAsrError, match="SHA-256 .* is not the published"):
        download(arctic_spec("http://x.invalid/cmu_us_zzz_arctic.tar.bz2", "0" * 64), tmp_path / "out", archive)
    assert not (tmp_path / "out" / "cmu_arctic").exists()


def test_from_a_folder_holding_an_unpacked_copy(tmp_path):
    make_speechocean(tmp_path / "copy" / "speechocean762", {"train": ["0001"], "test": ["0002"]})
    download("speechocean762", tmp_path / "out", tmp_path / "copy")
    root = tmp_path / "out" / "speechocean762"
    assert (root / "train" / "wav.scp").is_file() and (root / "resource" / "text-phone").is_file()
    assert len(open_source("speechocean762", root, CorpusSection(type="speechocean762")).split("test").items) == 4
    make_arctic_voice(tmp_path / "voices", "zzz", SOME)  # --from the voice folder itself
    download(arctic_spec("http://x.invalid/cmu_us_zzz_arctic.tar.bz2", None), tmp_path / "out",
             tmp_path / "voices" / "cmu_us_zzz_arctic")
    assert (tmp_path / "out" / "cmu_arctic" / "cmu_us_zzz_arctic" / "etc" / "txt.done.data").is_file()
    with pytest.raises(LstmAsrError, match="neither speechocean762.tar.gz nor an unpacked copy"):
        download("speechocean762", tmp_path / "out2", tmp_path / "copy" / "speechocean762" / "WAVE")


def test_cli_kathleen_from_a_zip_like_githubs(tmp_path):
    make_kathleen(tmp_path / "dataset-voice-kathleen-master", SOME, takes=1)
    zpath = tmp_path / "kathleen.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted((tmp_path / "dataset-voice-kathleen-master").rglob("*")):
            z.write(f, f.relative_to(tmp_path))
    done = run_cli("download", "kathleen", str(tmp_path / "out"), "--from", str(zpath))
    assert done.returncode == 0, done.stderr
    assert "corpus.type: audio_folder" in done.stdout
    root = tmp_path / "out" / "kathleen"
    src = open_source("audio_folder", root, CorpusSection(type="audio_folder", prompts="cmuarctic.data",
                                                          test_share=0.0, dev_share=0.0))
    assert len(src.split("train").items) == 3


def test_offline_without_from_is_a_one_line_error_saying_what_to_fetch(tmp_path):
    def offline(request, timeout):
        raise urllib.error.URLError("Name or service not known")

    with pytest.raises(LstmAsrError) as err:
        download("speechocean762", tmp_path / "out", opener=offline)
    msg = str(err.value)
    assert "https://www.openslr.org/resources/101/speechocean762.tar.gz" in msg and "--from" in msg
    assert "\n" not in msg
    done = run_cli("download", "nope", str(tmp_path / "out"))
    assert done.returncode == 1 and done.stderr.startswith("error: unknown corpus 'nope'")


class _Response(io.BytesIO):
    def __init__(self, data: bytes, status: int, length: int | None) -> None:
        super().__init__(data)
        self.status = status
        self.headers = {"Content-Length": str(length)} if length is not None else {}


def test_a_broken_download_resumes_with_a_range_request(tmp_path):
    make_arctic_voice(tmp_path / "src", "zzz", SOME)
    archive = tar_of(tmp_path / "src" / "cmu_us_zzz_arctic", tmp_path / "a.tar.gz", "cmu_us_zzz_arctic")
    data = archive.read_bytes()
    spec = arctic_spec("http://example.invalid/cmu_us_zzz_arctic.tar.gz", sha(archive))
    ranges = []

    def server(request, timeout):
        rng = request.get_header("Range")
        ranges.append(rng)
        if rng is None:  # the first attempt breaks off after a third of the file
            return _Response(data[: len(data) // 3], 200, len(data))
        start = int(rng.removeprefix("bytes=").rstrip("-"))
        return _Response(data[start:], 206, len(data) - start)

    downloads = tmp_path / "out" / ".downloads"
    with pytest.raises(LstmAsrError, match="run the command again to resume"):
        fetch(spec.archives[0], downloads, spec.name, opener=server)
    assert (downloads / "cmu_us_zzz_arctic.tar.gz.part").stat().st_size == len(data) // 3
    download(spec, tmp_path / "out", opener=server)
    assert ranges == [None, f"bytes={len(data) // 3}-"]
    assert (downloads / "cmu_us_zzz_arctic.tar.gz").read_bytes() == data
    assert (tmp_path / "out" / "cmu_arctic" / "cmu_us_zzz_arctic" / "wav").is_dir()


def test_archives_cannot_write_outside_their_folder(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "in").mkdir()
    with pytest.raises(LstmAsrError, match="cannot unpack"):
        unpack(evil, tmp_path / "in")
    assert not (tmp_path / "outside.txt").exists()
    zevil = tmp_path / "evil.zip"
    with zipfile.ZipFile(zevil, "w") as z:
        z.writestr("../outside.txt", "x")
    with pytest.raises(LstmAsrError, match="outside the folder"):
        unpack(zevil, tmp_path / "in")


def test_the_catalog_names_official_urls_and_known_checksums():
    assert {"arctic", "kathleen", "speechocean762", "librispeech-dev-clean", "librispeech-train-clean-100",
            "arctic-bdl", "arctic-slt"} <= set(CATALOG)
    assert len(CATALOG["arctic"].archives) == 7
    for spec in CATALOG.values():
        for a in spec.archives:
            assert a.url.startswith(("http://festvox.org/", "https://www.openslr.org/", "https://github.com/"))
            assert a.sha256 is None or len(a.sha256) == 64
    assert CATALOG["arctic-bdl"].archives[0].sha256 and CATALOG["librispeech-dev-clean"].archives[0].sha256
