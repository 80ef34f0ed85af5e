"""Hugging Face datasets on disk: a folder written by ``save_to_disk`` (a ``DatasetDict``, or one ``Dataset``), or
a folder of parquet files, with an ``Audio`` column and a transcript column.

``corpus.path`` is the folder. Splits are the dataset's own: ``<path>/<split>/`` of a DatasetDict (its
``dataset_dict.json`` lists them); a single saved Dataset is one split, named by its ``state.json`` (``_split``),
else ``train``; parquet files belong to split ``S`` when named ``S.parquet`` or ``S-00000-of-00004.parquet`` (the
Hub's naming), or when they lie in a folder named ``S``.

Columns come from the recipe: ``corpus.text_column`` (default ``text``), ``corpus.audio_column`` (``audio``),
``corpus.speaker_column`` (default none: every utterance is its own speaker) and ``corpus.id_column`` (default:
an ``id`` column if there is one, else ``<split>-<row>``). The audio column holds what ``datasets.Audio`` stores
(``{bytes, path}``), or plain bytes, or a path. Bytes are decoded by our own audio reader (libsndfile), not by
``datasets``' decoders, and a path without bytes is read as a file (relative: from the dataset's folder).

The tables are read with pyarrow alone (``pip install 'lstm-asr[hf]'``): nothing is fetched from the Hub, and
``datasets`` itself is not imported.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from data_prep.audio import read_audio_bytes
from data_prep.sources import Waveform, register_source
from lstm_asr.errors import CorpusError, LstmAsrError

from .text_corpus import Listing, TextCorpusSource, Utterance, check_unique, cut_segment, read_segment

MAX_JSON_BYTES = 1 << 20  # state.json and dataset_dict.json are a few hundred bytes


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise LstmAsrError("corpus.type: hf needs pyarrow (pip install 'lstm-asr[hf]')") from None
    return pa


def read_json(path: Path) -> Any:
    """A small JSON file (a saved dataset's ``state.json``/``dataset_dict.json``), or a one-line error."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise CorpusError(path, f"larger than {MAX_JSON_BYTES} bytes")
        return json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorpusError(path, f"not a readable JSON file ({exc.__class__.__name__})") from None


def saved_splits(root: Path) -> list[str] | None:
    """The split names of a ``save_to_disk`` folder, or None when it is not one."""
    if (root / "dataset_dict.json").is_file():
        splits = read_json(root / "dataset_dict.json")
        splits = splits.get("splits") if isinstance(splits, dict) else None
        if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
            raise CorpusError(root / "dataset_dict.json", "no list of split names ('splits')")
        return splits
    if (root / "state.json").is_file():
        state = read_json(root / "state.json")
        name = state.get("_split") if isinstance(state, dict) else None
        return [name if isinstance(name, str) and name else "train"]
    found = sorted(p.parent.name for p in root.glob("*/state.json"))
    return found or None


def arrow_files(folder: Path) -> list[Path]:
    """The arrow files of one saved Dataset (``state.json``'s ``_data_files``, in order)."""
    state = read_json(folder / "state.json")
    files = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(files, list) or not files:
        raise CorpusError(folder / "state.json", "no '_data_files' list")
    out = []
    for entry in files:
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise CorpusError(folder / "state.json", "a '_data_files' entry names no file in the folder")
        out.append(folder / name)
    return out


def parquet_files(root: Path, split: str) -> list[Path]:
    """The parquet files of ``split`` under ``root``: ``S.parquet``, ``S-00000-of-00002.parquet``, or any
    ``*.parquet`` in a folder named ``S``."""
    shard = re.compile(rf"{re.escape(split)}(-\d+-of-\d+)?")
    return sorted(p for p in root.rglob("*.parquet")
                  if shard.fullmatch(p.stem) or p.parent.name == split and p.parent != root)


# --- tables ------------------------------------------------------------------------------------------------------

# Per process, the last few tables (or parquet row groups) read: prep's workers read one row at a time, in order.
_TABLES: dict[tuple, tuple[tuple[int, int], Any]] = {}


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise CorpusError(path, f"cannot read ({exc.strerror or exc})") from None
    return st.st_size, st.st_mtime_ns


def _checked(path: Path, load: Any) -> Any:
    """``load()`` (a table), validated; pyarrow's errors on a bad file become one-line errors."""
    pa = _pyarrow()
    try:
        table = load()
        table.validate(full=True)
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise CorpusError(path, f"not a readable arrow/parquet table ({str(exc).splitlines()[0][:200]})") from None
    return table


def _cached(key: tuple, path: Path, load: Any) -> Any:
    """:func:`_checked` ``load()``, kept for the next call with the same key while the file is unchanged."""
    stamp = _stamp(path)
    hit = _TABLES.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    table = _checked(path, load)
    if len(_TABLES) >= 4:
        _TABLES.pop(next(iter(_TABLES)))
    _TABLES[key] = (stamp, table)
    return table


def open_table(path: Path, columns: list[str] | None = None) -> Any:
    """A pyarrow table of an arrow file (IPC stream, as ``save_to_disk`` writes, or IPC file; memory-mapped, so
    nothing is copied) or of a parquet file (read, and decompressed, whole: for listing); bad files are one-line
    errors."""
    pa = _pyarrow()

    def load() -> Any:
        if path.suffix == ".parquet":
            return pa.parquet.read_table(path, columns=columns)
        source = pa.memory_map(str(path))
        try:
            table = pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            table = pa.ipc.open_file(source).read_all()
        return table.select(columns) if columns is not None else table

    if path.suffix == ".parquet":  # not kept: a parquet shard's audio can be hundreds of MB
        _stamp(path)
        return _checked(path, load)
    return _cached((str(path), tuple(columns or ())), path, load)


def cell_value(path: Path, column: str, row: int) -> Any:
    """The value in ``column``, ``row`` of a table file. From parquet only the row group holding the row is read
    (and kept for the next rows)."""
    pa = _pyarrow()
    if path.suffix != ".parquet":
        table = open_table(path, [column])
        if not 0 <= row < table.num_rows:
            raise CorpusError(path, f"no row {row} (the table has {table.num_rows})")
        return table.column(0)[row].as_py()
    try:
        meta = pa.parquet.ParquetFile(path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorpusError(path, f"not a readable parquet file ({str(exc).splitlines()[0][:200]})") from None
    first = 0
    for group, size in enumerate(sizes):
        if row < first + size:
            table = _cached((str(path), column, group), path,
                            lambda g=group: pa.parquet.ParquetFile(path).read_row_group(g, columns=[column]))
            return table.column(0)[row - first].as_py()
        first += size
    raise CorpusError(path, f"no row {row} (the table has {first})")


def audio_value(value: Any) -> tuple[bytes | None, str | None]:
    """(bytes, path) of an audio cell: ``datasets.Audio``'s ``{bytes, path}``, raw bytes, or a path string."""
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        return (data if isinstance(data, bytes) and data else None), (path if isinstance(path, str) and path else None)
    if isinstance(value, bytes):
        return value or None, None
    if isinstance(value, str):
        return None, value or None
    return None, None


def audio_presence(column: Any, path: Path) -> list[tuple[bool, str | None]]:
    """Per row of an audio column: (holds audio bytes, the path it names), computed by arrow without copying the
    bytes into Python (a split's audio can be gigabytes)."""
    pa = _pyarrow()
    import pyarrow.compute as pc

    def present(arr: Any) -> list[bool]:
        return pc.fill_null(pc.greater(pc.binary_length(arr), 0), False).to_pylist()

    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    t = arr.type
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        has = present(arr.field("bytes")) if "bytes" in names and _is_binary(pa, t.field("bytes").type) \
            else [False] * len(arr)
        paths = arr.field("path").to_pylist() if "path" in names and _is_string(pa, t.field("path").type) \
            else [None] * len(arr)
        valid = arr.is_valid().to_pylist()
        return [(h and v, p if v and p else None) for h, p, v in zip(has, paths, valid, strict=True)]
    if _is_binary(pa, t):
        return [(h, None) for h in present(arr)]
    if _is_string(pa, t):
        return [(False, p or None) for p in arr.to_pylist()]
    raise CorpusError(path, f"the audio column is {t}, not audio (datasets.Audio's {{bytes, path}}, bytes or a path)")


def _is_binary(pa: Any, t: Any) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _is_string(pa: Any, t: Any) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def read_cell_audio(path: str, cell: tuple[str, int] | None = None, start: float | None = None,
                    end: float | None = None, channels: tuple[int, ...] | None = None,
                    command: str | None = None) -> Waveform:
    """The audio of an utterance of a Hugging Face dataset: the bytes in ``cell`` (column, row) of the table file
    ``path``, or (no cell) the audio file ``path``. Runs in prep's worker processes."""
    if cell is None:
        return read_segment(path, start, end, command, channels)
    column, row = cell
    what = f"{path} (row {row})"
    data, _ = audio_value(cell_value(Path(path), column, row))
    if data is None:
        raise CorpusError(what, "no audio bytes")
    samples, rate = read_audio_bytes(data, what, channels)
    return cut_segment(samples, rate, start, end, what)


@register_source
class HfDatasetSource(TextCorpusSource):
    """A Hugging Face dataset saved to disk, or parquet files, with an audio and a text column."""

    kind = "hf"
    read = staticmethod(read_cell_audio)

    def __init__(self, root: Path, units: str = "", lexicon: str = "", bpe_vocab_size: int = 100,
                 train_split: str = "train", text_column: str = "text", audio_column: str = "audio",
                 speaker_column: str = "", id_column: str = "") -> None:
        super().__init__(root, units, lexicon, bpe_vocab_size, False, train_split)
        self.text_column, self.audio_column = text_column, audio_column
        self.speaker_column, self.id_column = speaker_column, id_column

    @classmethod
    def from_recipe(cls, root: Path, corpus=None) -> HfDatasetSource:
        if corpus is None:
            return cls(root)
        return cls(root, **cls.text_options(corpus), text_column=corpus.text_column,
                   audio_column=corpus.audio_column, speaker_column=corpus.speaker_column, id_column=corpus.id_column)

    def split_files(self, name: str) -> list[Path]:
        """The table files of split ``name``, in row order."""
        if not self.root.is_dir():
            raise CorpusError(self.root, "not a dataset folder (save_to_disk output or parquet files)")
        splits = saved_splits(self.root)
        if splits is not None:
            if name not in splits:
                raise CorpusError(self.root, f"no split '{name}' in the saved dataset (it has: {', '.join(splits)})")
            single = (self.root / "state.json").is_file() and not (self.root / "dataset_dict.json").is_file()
            return arrow_files(self.root if single else self.root / name)
        files = parquet_files(self.root, name)
        if not files:
            raise CorpusError(self.root, f"no dataset for split '{name}' (no save_to_disk folder, no {name}.parquet "
                              f"or {name}-*.parquet)")
        return files

    def list_split(self, name: str) -> Listing:
        out = Listing()
        ids: list[tuple[str, int]] = []
        index = 0  # row number across the split's files: the default id and the line in messages
        for path in self.split_files(name):
            table = open_table(path)
            names = table.schema.names
            wanted = [self.text_column, self.audio_column, self.speaker_column, self.id_column]
            missing = [c for c in wanted if c and c not in names]
            if missing:
                raise CorpusError(path, f"no column {missing[0]!r} (columns: {', '.join(names)}; set "
                                  "corpus.text_column/audio_column/speaker_column/id_column)")
            id_column = self.id_column or ("id" if "id" in names else "")
            rows = table.select([c for c in dict.fromkeys([self.text_column, self.speaker_column, id_column])
                                 if c]).to_pylist()
            audio = audio_presence(table.column(self.audio_column), path)
            for row_no, (row, (has_bytes, audio_path)) in enumerate(zip(rows, audio, strict=True)):
                index += 1
                utt = str(row.get(id_column)) if id_column and row.get(id_column) is not None else f"{name}-{index:06d}"
                ids.append((utt, index))
                where = f"{path} (row {row_no}, {utt})"
                text = row.get(self.text_column)
                if not isinstance(text, str) or not text.strip():
                    out.skipped.append((where, "no transcript"))
                    continue
                speaker = row.get(self.speaker_column) if self.speaker_column else None
                speaker = str(speaker) if speaker is not None and str(speaker) else utt
                if has_bytes:
                    out.utterances.append(Utterance(utt, speaker, str(path), text, cell=(self.audio_column, row_no)))
                    continue
                if audio_path is None:
                    out.skipped.append((where, "no audio"))
                    continue
                file = Path(audio_path) if Path(audio_path).is_absolute() else path.parent / audio_path
                if not file.is_file():
                    out.skipped.append((str(file), "audio file not found"))
                    continue
                out.utterances.append(Utterance(utt, speaker, str(file), text))
        check_unique(ids, self.root / name)
        return out
