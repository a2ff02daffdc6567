"""tlsutil.py - certificates for the tests, made with the openssl command line: a test CA and
server certificates signed by it (EC P-256, quick to make), valid, expired or for another name.

    ca = TestCA(tmp_path)
    cert, key = ca.issue("mx.example.com")                   # valid for a year
    cert, key = ca.issue("old.example.com", expired=True)    # expired yesterday
    ca.path                                                  # the CA certificate (PEM)
"""

import subprocess
from pathlib import Path


def _run(*args, cwd=None):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class TestCA:
    __test__ = False  # not a pytest class

    def __init__(self, directory, name="Drover Test CA"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = self.dir / "ca.key"
        self.path = self.dir / "ca.pem"
        _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(self.key))
        _run("req", "-x509", "-new", "-key", str(self.key), "-days", "3650", "-subj",
             f"/CN={name}", "-out", str(self.path))
        self.serial = 1

    def issue(self, *names, expired=False, stem=None):
        """A certificate for names (the first is the CN, all are in subjectAltName) and its
        key: (cert path, key path). The certificate file holds the CA too (a chain)."""
        stem = stem or names[0].replace("*", "star")
        key = self.dir / f"{stem}.key"
        csr = self.dir / f"{stem}.csr"
        crt = self.dir / f"{stem}.crt"
        ext = self.dir / f"{stem}.ext"
        _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
        _run("req", "-new", "-key", str(key), "-subj", f"/CN={names[0]}", "-out", str(csr))
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n"
                       "extendedKeyUsage=serverAuth\n")
        self.serial += 1
        if expired:
            # x509 -days cannot go back in time; "ca" can, with explicit dates.
            db = self.dir / "index.txt"
            db.write_text("")
            (self.dir / "serial").write_text(f"{self.serial:04X}\n")
            conf = self.dir / "ca.cnf"
            conf.write_text(
                "[ca]\ndefault_ca=d\n[d]\n"
                f"database={db}\nserial={self.dir / 'serial'}\nnew_certs_dir={self.dir}\n"
                "default_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n")
            _run("ca", "-batch", "-config", str(conf), "-cert", str(self.path), "-keyfile",
                 str(self.key), "-in", str(csr), "-out", str(crt), "-startdate",
                 "20200101000000Z", "-enddate", "20200201000000Z", "-extfile", str(ext),
                 "-notext")
        else:
            _run("x509", "-req", "-in", str(csr), "-CA", str(self.path), "-CAkey",
                 str(self.key), "-set_serial", str(self.serial), "-days", "365", "-extfile",
                 str(ext), "-out", str(crt))
        chain = self.dir / f"{stem}.pem"
        chain.write_bytes(crt.read_bytes() + self.path.read_bytes())
        return chain, key
