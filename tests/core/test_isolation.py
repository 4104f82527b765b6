import subprocess
import sys


def test_core_imports_no_gui_modules():
    code = (
        "import sys, napari_resunet, napari_resunet.core, napari_resunet.cli;"
        "bad = [m for m in ('qtpy', 'napari', 'magicgui', 'superqt', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6')"
        " if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"core pulled in GUI modules: {out.stdout}"
