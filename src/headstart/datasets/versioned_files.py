"""The fsspec plumbing our versioned datasets share (after kedro-datasets' own file datasets)."""

from __future__ import annotations

from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path


class VersionedFileDataset(AbstractVersionedDataset):
    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        fs_args = deepcopy(fs_args) or {}
        if protocol == "file":
            fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **fs_args)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path), version=version, exists_function=self._fs.exists, glob_function=self._fs.glob
        )

    def _load_path(self) -> str:
        return get_filepath_str(self._get_load_path(), self._protocol)

    def _save_path(self) -> str:
        return get_filepath_str(self._get_save_path(), self._protocol)

    def _write_atomically(self, files: dict[str, bytes]) -> None:
        """Write `files` (relative names → bytes; "" is the save path itself) under a `.partial` name and
        move it into place only when every byte is written: a full disk or a kill never leaves a
        half-written version that loading would take as the latest."""
        final = self._save_path()
        partial = f"{final}.partial"
        try:
            for name, content in files.items():
                path = f"{partial}/{name}" if name else partial
                self._fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
                with self._fs.open(path, "wb") as file:
                    file.write(content)
            self._fs.mv(partial, final, recursive=True)
        except OSError as error:
            if self._fs.exists(partial):
                self._fs.rm(partial, recursive=True)
            version_folder = str(PurePosixPath(final).parent)
            if self._fs.exists(version_folder) and not self._fs.ls(version_folder):
                self._fs.rmdir(version_folder)
            raise DatasetError(f"{final}: could not be written ({error}); nothing of this version was kept") from error

    def _exists(self) -> bool:
        try:
            path = self._load_path()
        except Exception:
            return False
        return self._fs.exists(path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}
