"""The Python client's build backend (PEP 517, PEP 660): builds the wheel, the sdist and an editable wheel from
pyproject.toml with nothing but the standard library, so that ``pip install ./clients/python`` needs no download,
not even setuptools (pip builds in an isolated environment that cannot see the system's packages).

What goes in: the package folder ``videomatch_client`` (its modules, the stubs generate.sh wrote and ``py.typed``),
and metadata from ``[project]``: name, version, description, readme, requires-python, license, dependencies and
optional-dependencies. Anything else in ``[project]`` is refused, so that nothing written there is silently ignored.
"""
import ast
import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "videomatch_client"
KNOWN = {"name", "version", "description", "readme", "requires-python", "license", "dependencies", "optional-dependencies"}
# Fixed times keep builds byte-for-byte reproducible.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def read_pyproject(path=None):
    """pyproject.toml as a dict: tomllib (Python 3.11+), else tomli, else the small reader below."""
    with open(path or os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        data = f.read()
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            return parse_simple_toml(data.decode("utf-8"))
    return tomllib.loads(data.decode("utf-8"))


def parse_simple_toml(text):
    """The TOML this project's pyproject.toml uses: [tables], key = "string", key = ["list", ...] and
    key = {k = "v"}, one per line, with # comments. Anything else raises ValueError naming the line."""
    result, table = {}, None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]", line)
        if header:
            table = result
            for part in header.group(1).split("."):
                table = table.setdefault(part, {})
            continue
        entry = re.fullmatch(r'([A-Za-z0-9_-]+|"[^"]+")\s*=\s*(.+?)\s*(#[^"\]}]*)?', line)
        if not entry or table is None:
            raise ValueError(f"pyproject.toml line {number}: not understood without tomllib (Python 3.11+) or tomli: {raw}")
        value = entry.group(2)
        if value.startswith("{"):
            value = re.sub(r'([A-Za-z0-9_-]+)\s*=', r'"\1":', value)
        try:
            table[entry.group(1).strip('"')] = ast.literal_eval(value.replace("true", "True").replace("false", "False"))
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"pyproject.toml line {number}: not understood without tomllib (Python 3.11+) or tomli: {raw}") from error
    return result


def _project():
    project = read_pyproject()["project"]
    unknown = sorted(set(project) - KNOWN)
    if unknown:
        raise ValueError(f"pyproject.toml [project] has {unknown}, which clients/python/_backend/videomatch_build.py does not write; add them there")
    return project


def _dist_name(project):
    return re.sub(r"[-_.]+", "_", project["name"]).lower()


def _metadata(project):
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "license" in project:
        lines.append(f"License: {project['license']['text']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {d}" for d in project.get("dependencies", [])]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {r}; extra == "{extra}"' for r in requirements]
    body = ""
    if "readme" in project:
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(ROOT, project["readme"]), encoding="utf-8") as f:
            body = "\n" + f.read()
    return "\n".join(lines) + "\n" + body


def _package_files():
    """(path in the archive, path on disk) for every file of the package, sorted; no caches."""
    found = []
    for folder, dirs, files in os.walk(os.path.join(ROOT, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in files:
            if name.endswith((".py", ".typed")):
                disk = os.path.join(folder, name)
                found.append((os.path.relpath(disk, ROOT).replace(os.sep, "/"), disk))
    if not any(p.endswith("_generated/videomatch_pb2.py") for p, _ in found):
        raise FileNotFoundError(f"{PACKAGE}/_generated/videomatch_pb2.py is missing: run clients/python/generate.sh")
    return sorted(found)


def _write_wheel(wheel_directory, project, contents):
    """A py3-none-any wheel of (archive path, bytes) plus its dist-info; returns the file name."""
    name, version = _dist_name(project), project["version"]
    info = f"{name}-{version}.dist-info"
    contents = list(contents) + [
        (f"{info}/METADATA", _metadata(project).encode("utf-8")),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: videomatch_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/top_level.txt", f"{PACKAGE}\n".encode()),
    ]
    record = []
    for path, data in contents:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    contents.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    wheel = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in contents:
            entry = zipfile.ZipInfo(path, ZIP_TIME)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return wheel


def _read(disk):
    with open(disk, "rb") as f:
        return f.read()


# --- PEP 517 / PEP 660 hooks ------------------------------------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, _project(), [(path, _read(disk)) for path, disk in _package_files()])


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """A wheel whose .pth file puts this folder on sys.path: edits to the package take effect without reinstalling."""
    project = _project()
    _package_files()
    return _write_wheel(wheel_directory, project, [(f"__editable__.{_dist_name(project)}.pth", (ROOT + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    project = _project()
    base = f"{_dist_name(project)}-{project['version']}"
    files = [("pyproject.toml", os.path.join(ROOT, "pyproject.toml")), ("_backend/videomatch_build.py", os.path.abspath(__file__))]
    if "readme" in project:
        files.append((project["readme"], os.path.join(ROOT, project["readme"])))
    files += _package_files()
    sdist = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, sdist), "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for path, data in [("PKG-INFO", _metadata(project).encode("utf-8"))] + [(p, _read(d)) for p, d in files]:
            entry = tarfile.TarInfo(f"{base}/{path}")
            entry.size, entry.mode, entry.mtime = len(data), 0o644, 315532800
            archive.addfile(entry, io.BytesIO(data))
    return sdist
