"""ansible-test's pip bootstrap, without its download.

ansible-test installs each sanity test's requirements into a new virtual environment and first
bootstraps pip there with a get-pip script it downloads from ci-files.testing.ansible.com. Where
that host cannot be reached (this project's CI and lab machines reach only their package index),
tests/sanity/run puts this file where ansible-test caches that script, with a wheels/ directory
beside it holding the pip wheel ansible-test asks for (downloaded by the project's own pip). It
takes pip from the Python's own ensurepip, then installs that pip from wheels/ only, as the real
script would from its embedded copy.
"""

import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
wheels = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wheels")
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", wheels, *args]))
