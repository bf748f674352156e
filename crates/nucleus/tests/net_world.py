"""Test servers for the network end-to-end tests, run inside the test's own network namespace:
every address given on the command line gets a TCP server on port 8080 that answers
"ok ADDRESS from PEER" and closes. Writes "ready" to the file named first once all are listening."""
import selectors, socket, sys

ready, addrs = sys.argv[1], sys.argv[2:]
sel = selectors.DefaultSelector()
for a in addrs:
    fam = socket.AF_INET6 if ":" in a else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a, 8080))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ, a)
with open(ready, "w") as f:
    f.write("ready\n")
while True:
    for key, _ in sel.select():
        c, peer = key.fileobj.accept()
        try:
            c.sendall(("ok %s from %s\n" % (key.data, peer[0])).encode())
        finally:
            c.close()
