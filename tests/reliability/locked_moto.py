"""python -m tests.reliability.locked_moto --port N: the devstack moto server with serialised DynamoDB."""
import sys

from devstack import moto_server
from tests.reliability import moto_lock

if __name__ == "__main__":
    moto_lock.install()
    sys.exit(moto_server.main(sys.argv[1:]))
