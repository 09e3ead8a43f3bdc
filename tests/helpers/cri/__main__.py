"""Command line of the CRI test helpers, for scripts/test-daemons.sh and for people:

    PYTHONPATH=tests python -m helpers.cri images    # build the sandbox and busybox images, import them
    PYTHONPATH=tests python -m helpers.cri cleanup   # stop and remove every pod the tests made

Both act on the containerd of $ZC_CONTAINERD_ADDRESS (default /run/containerd/containerd.sock).
"""

import sys

from helpers import cri
from helpers.cri import images


def main(argv):
    if argv == ["images"]:
        name = images.sandbox_image_name()
        images.import_images(cri.ADDRESS, images.build_images(name))
        print("cri: imported %s and %s into %s" % (name, images.BUSYBOX_IMAGE, cri.ADDRESS))
        return 0
    if argv == ["cleanup"]:
        print("cri: removed %d test pods from %s" % (cri.cleanup(), cri.ADDRESS))
        return 0
    print("usage: python -m helpers.cri images|cleanup", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
