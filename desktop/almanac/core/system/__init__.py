"""What the core needs from the machine: CPU cores, the offline switches, file hashing, and which
files under the library folders may be read (confinement and ignore rules)."""

from almanac.core.system.hardware import physical_cores
from almanac.core.system.hashing import sha256_file
from almanac.core.system.offline import enforce_offline_env

__all__ = ["enforce_offline_env", "physical_cores", "sha256_file"]
