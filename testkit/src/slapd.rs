//! A private OpenLDAP `slapd` for directory tests: its own configuration and database in a
//! temporary directory (loaded offline with `slapadd`), on a loopback port, with StartTLS
//! (a certificate from [`crate::tls`]). The tree is a small hospital: a service account
//! Sekisho searches with, staff with passwords, and `groupOfNames` groups for the roles.
//! Anonymous users may only authenticate; only bound users read. Killed on drop (and with
//! the test process, through a parent-death signal).
//!
//! Where `slapd` is missing the tests that need it are skipped, except when `CI` is set:
//! there it is a failure (`.ci/run` installs slapd and ldap-utils).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SLAPD: &str = "/usr/sbin/slapd";
pub const SUFFIX: &str = "dc=hospital,dc=test";
pub const ROOT_DN: &str = "cn=admin,dc=hospital,dc=test";
const ROOT_PASSWORD: &str = "root password of the test directory";
pub const SERVICE_DN: &str = "cn=sekisho,ou=services,dc=hospital,dc=test";
pub const SERVICE_PASSWORD: &str = "service password of sekisho";
pub const PEOPLE: &str = "ou=people,dc=hospital,dc=test";

/// The group DN of `name` (`sekisho-approvers`, ...).
pub fn group(name: &str) -> String {
    format!("cn={name},ou=groups,{SUFFIX}")
}

/// The entry DN of person `uid`.
pub fn person(uid: &str) -> String {
    format!("uid={uid},{PEOPLE}")
}

pub struct Slapd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

fn skip(why: &str) -> Option<Slapd> {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run the test slapd in CI: {why} (.ci/run installs slapd)");
    }
    eprintln!("skipping: {why}");
    None
}

fn hash(password: &str) -> String {
    let out = Command::new("slappasswd")
        .args(["-s", password])
        .output()
        .expect("slappasswd");
    assert!(out.status.success(), "slappasswd failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A person: uid, display name, mail, password.
pub struct Person<'a> {
    pub uid: &'a str,
    pub name: &'a str,
    pub mail: &'a str,
    pub password: &'a str,
}

impl Slapd {
    /// Starts slapd with `people` and groups (name → member uids; a group needs one member).
    pub fn start(people: &[Person<'_>], groups: &[(&str, &[&str])]) -> Option<Slapd> {
        if !Path::new(SLAPD).exists() {
            return skip("no /usr/sbin/slapd (install slapd)");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::create_dir(d.join("db")).expect("db dir");
        let (cert, key) = crate::tls::certificate(d);
        let conf = d.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\n\
                 include /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\n\
                 modulepath /usr/lib/ldap\n\
                 moduleload back_mdb\n\
                 pidfile {d}/slapd.pid\n\
                 TLSCACertificateFile {d}/ca.pem\n\
                 TLSCertificateFile {cert}\n\
                 TLSCertificateKeyFile {key}\n\
                 database mdb\n\
                 maxsize 10485760\n\
                 suffix \"{SUFFIX}\"\n\
                 rootdn \"{ROOT_DN}\"\n\
                 rootpw {root}\n\
                 directory {d}/db\n\
                 access to attrs=userPassword by self write by anonymous auth by * none\n\
                 access to * by users read by * none\n",
                d = d.display(),
                root = hash(ROOT_PASSWORD),
            ),
        )
        .expect("slapd.conf");
        let mut ldif = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Test Hospital\ndc: hospital\n\n\
             dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n\n\
             dn: {SERVICE_DN}\nobjectClass: person\ncn: sekisho\nsn: service\nuserPassword: {}\n\n",
            hash(SERVICE_PASSWORD)
        );
        for p in people {
            ldif.push_str(&format!(
                "dn: {}\nobjectClass: inetOrgPerson\nuid: {}\ncn: {}\nsn: {}\ndisplayName: {}\nmail: {}\nuserPassword: {}\n\n",
                person(p.uid),
                p.uid,
                p.uid,
                p.uid,
                p.name,
                p.mail,
                hash(p.password)
            ));
        }
        for (name, members) in groups {
            ldif.push_str(&format!(
                "dn: {}\nobjectClass: groupOfNames\ncn: {name}\n",
                group(name)
            ));
            for m in *members {
                ldif.push_str(&format!("member: {}\n", person(m)));
            }
            ldif.push('\n');
        }
        let ldif_path = d.join("data.ldif");
        std::fs::write(&ldif_path, ldif).expect("data.ldif");
        let added = Command::new("slapadd")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&ldif_path)
            .output()
            .expect("slapadd");
        assert!(
            added.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        for _ in 0..5 {
            let port = crate::port::free_port();
            let child = Command::new("setpriv")
                .args(["--pdeathsig=KILL", SLAPD, "-d", "0", "-h"])
                .arg(format!("ldap://127.0.0.1:{port}/"))
                .arg("-f")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) => return skip(&format!("cannot start slapd: {e}")),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Slapd {
                        dir,
                        child: Some(child),
                        port,
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("slapd did not start");
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the server's certificate (for StartTLS).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Applies an LDIF change as the directory's administrator, with `ldapmodify`.
    pub fn modify(&self, ldif: &str) {
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ldif.as_bytes())
            .expect("ldif");
        let out = child.wait_with_output().expect("ldapmodify");
        assert!(
            out.status.success(),
            "ldapmodify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the directory (one that does not answer).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
