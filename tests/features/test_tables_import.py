import subprocess
import sys


def test_read_tables_works_without_importing_the_schema_first():
    code = (
        "from features.tables import read_tables\n"
        "from features.store._db import Base\n"
        "assert 'skus' in Base.metadata.tables, sorted(Base.metadata.tables)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
