//! Walks a parsed TOML document, collecting every problem instead of stopping at the first.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;

use sekisho_domain::policy::ChecklistItem;
use sekisho_domain::user::Role;
use sekisho_domain::zone::DisplayZone;
use toml_edit::{Document, Item, TableLike, Value};

use crate::error::Problem;
use crate::model::LogFormat;

/// A section of the document (`[api]`), possibly absent.
#[derive(Clone, Copy)]
pub(crate) struct Sec<'a> {
    name: &'static str,
    table: Option<&'a dyn TableLike>,
}

impl Sec<'_> {
    /// Whether the section sets `key` (whatever its value).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.is_some_and(|t| t.get(key).is_some())
    }
}

pub(crate) struct Reader {
    doc: Document<String>,
    problems: RefCell<Vec<Problem>>,
}

pub(crate) type Parsed<T> = Result<T, String>;

impl Reader {
    pub(crate) fn new(text: &str) -> Result<Self, Vec<Problem>> {
        match Document::parse(text.to_owned()) {
            Ok(doc) => Ok(Self {
                doc,
                problems: RefCell::new(Vec::new()),
            }),
            Err(e) => Err(vec![Problem {
                line: e.span().map(|s| line_of(text, s.start)),
                key: "(syntax)".into(),
                message: e.message().trim().to_owned(),
            }]),
        }
    }

    fn root(&self) -> Option<&dyn TableLike> {
        self.doc.as_item().as_table_like()
    }

    fn line(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        span.map(|s| line_of(self.doc.raw(), s.start))
    }

    fn push(&self, line: Option<usize>, key: String, message: impl Into<String>) {
        self.problems.borrow_mut().push(Problem {
            line,
            key,
            message: message.into(),
        });
    }

    /// Reports top-level keys that are not sections or settings we know.
    pub(crate) fn known_root(&self, known: &[&str]) {
        if let Some(root) = self.root() {
            self.unknown_keys(root, None, known);
        }
    }

    pub(crate) fn unknown_keys(&self, table: &dyn TableLike, prefix: Option<&str>, known: &[&str]) {
        for (key, _) in table.iter() {
            if !known.contains(&key) {
                let line = self.line(table.key(key).and_then(|k| k.span()));
                let full = prefix.map_or_else(|| key.to_owned(), |p| format!("{p}.{key}"));
                let hint = match prefix {
                    Some(p) => format!("unknown key in [{p}]; known keys: {}", known.join(", ")),
                    None => format!("unknown key; known keys and sections: {}", known.join(", ")),
                };
                self.push(line, full, hint);
            }
        }
    }

    /// Opens `[name]`, reporting keys it does not know.
    pub(crate) fn section(&self, name: &'static str, known: &[&str]) -> Sec<'_> {
        let Some(root) = self.root() else {
            return Sec { name, table: None };
        };
        let table = match root.get(name) {
            None => None,
            Some(item) => match item.as_table_like() {
                Some(t) => {
                    self.unknown_keys(t, Some(name), known);
                    Some(t)
                }
                None => {
                    self.push(
                        self.line(item.span()),
                        name.into(),
                        "must be a table, e.g. [".to_owned() + name + "]",
                    );
                    None
                }
            },
        };
        Sec { name, table }
    }

    /// A top-level setting.
    pub(crate) fn root_value<T>(
        &self,
        key: &str,
        parse: impl Fn(&Value) -> Parsed<T>,
    ) -> Option<T> {
        let item = self.root()?.get(key)?;
        self.convert(item, key.to_owned(), parse)
    }

    pub(crate) fn convert<T>(
        &self,
        item: &Item,
        key: String,
        parse: impl Fn(&Value) -> Parsed<T>,
    ) -> Option<T> {
        let line = self.line(item.span());
        match item.as_value() {
            Some(v) => match parse(v) {
                Ok(t) => Some(t),
                Err(msg) => {
                    self.push(line, key, msg);
                    None
                }
            },
            None => {
                self.push(line, key, "expected a value, found a table");
                None
            }
        }
    }

    /// An optional setting of a section.
    pub(crate) fn opt<T>(
        &self,
        sec: Sec<'_>,
        key: &str,
        parse: impl Fn(&Value) -> Parsed<T>,
    ) -> Option<T> {
        let item = sec.table?.get(key)?;
        self.convert(item, format!("{}.{key}", sec.name), parse)
    }

    /// A setting with a default.
    pub(crate) fn get<T>(
        &self,
        sec: Sec<'_>,
        key: &str,
        parse: impl Fn(&Value) -> Parsed<T>,
        default: T,
    ) -> T {
        self.opt(sec, key, parse).unwrap_or(default)
    }

    /// A problem about a key of a section found by cross-checking values.
    pub(crate) fn problem_at(&self, sec: Sec<'_>, key: &str, message: String) {
        let line = sec
            .table
            .and_then(|t| t.get(key))
            .and_then(|i| self.line(i.span()));
        self.push(line, format!("{}.{key}", sec.name), message);
    }

    /// A problem about a dotted key (`ssh.listen`).
    pub(crate) fn problem_key(&self, dotted: &str, message: String) {
        let line = dotted.split_once('.').and_then(|(sec, key)| {
            let item = self.root()?.get(sec)?.as_table_like()?.get(key)?;
            self.line(item.span())
        });
        self.push(line, dotted.to_owned(), message);
    }

    /// `[[policy.checklist]]` entries: `key` and `label`, keys unique.
    pub(crate) fn checklist(&self, sec: Sec<'_>) -> Option<Vec<ChecklistItem>> {
        let name = "policy.checklist";
        let tables = self.tables(sec, "checklist", "`key` and `label`")?;
        let mut items: Vec<ChecklistItem> = Vec::new();
        for t in tables {
            self.unknown_keys(t, Some(name), &["key", "label"]);
            let field = |k: &str| -> Option<String> {
                match t.get(k) {
                    None => {
                        self.push(None, format!("{name}.{k}"), "missing in a checklist entry");
                        None
                    }
                    Some(i) => self.convert(i, format!("{name}.{k}"), Reader::non_empty_string),
                }
            };
            let (key, label) = (field("key"), field("label"));
            if let (Some(key), Some(label)) = (key, label) {
                if items.iter().any(|i| i.key == key) {
                    self.push(
                        None,
                        format!("{name}.key"),
                        format!("checklist key `{key}` appears twice"),
                    );
                }
                items.push(ChecklistItem { key, label });
            }
        }
        Some(items)
    }

    /// The entries of `[[SECTION.KEY]]` (or an array of inline tables), each a table with
    /// `fields` (for the message); `None` when absent or not a list of tables.
    pub(crate) fn tables<'s>(
        &'s self,
        sec: Sec<'s>,
        key: &str,
        fields: &str,
    ) -> Option<Vec<&'s dyn TableLike>> {
        let item = sec.table?.get(key)?;
        let name = format!("{}.{key}", sec.name);
        let tables: Vec<&dyn TableLike> = if let Some(aot) = item.as_array_of_tables() {
            aot.iter().map(|t| t as &dyn TableLike).collect()
        } else if let Some(arr) = item.as_array() {
            let mut out = Vec::new();
            for v in arr.iter() {
                match v.as_inline_table() {
                    Some(t) => out.push(t as &dyn TableLike),
                    None => self.push(
                        self.line(v.span()),
                        name.clone(),
                        format!("each entry must be a table with {fields}"),
                    ),
                }
            }
            out
        } else {
            self.push(
                self.line(item.span()),
                name.clone(),
                format!("must be a list of [[{name}]] tables with {fields}"),
            );
            return None;
        };
        Some(tables)
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, Vec<Problem>> {
        let mut problems = self.problems.into_inner();
        if problems.is_empty() {
            Ok(value)
        } else {
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            Err(problems)
        }
    }

    // Value parsers -------------------------------------------------------------------

    pub(crate) fn non_empty_string(v: &Value) -> Parsed<String> {
        match v.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
            Some(_) => Err("must not be empty".into()),
            None => Err(format!("expected a string, found {}", v.type_name())),
        }
    }

    pub(crate) fn path(v: &Value) -> Parsed<PathBuf> {
        Self::non_empty_string(v).map(PathBuf::from)
    }

    pub(crate) fn bool(v: &Value) -> Parsed<bool> {
        v.as_bool()
            .ok_or_else(|| format!("expected true or false, found {}", v.type_name()))
    }

    pub(crate) fn int<T: TryFrom<i64>>(v: &Value, min: i64, max: i64) -> Parsed<T> {
        let n = v
            .as_integer()
            .ok_or_else(|| format!("expected a whole number, found {}", v.type_name()))?;
        if n < min || n > max {
            return Err(format!("{n} is out of range: must be {min} to {max}"));
        }
        T::try_from(n).map_err(|_| format!("{n} is out of range"))
    }

    pub(crate) fn int_list<T: TryFrom<i64>>(v: &Value, min: i64, max: i64) -> Parsed<Vec<T>> {
        let arr = v
            .as_array()
            .ok_or_else(|| format!("expected a list of numbers, found {}", v.type_name()))?;
        arr.iter().map(|x| Self::int(x, min, max)).collect()
    }

    /// Environment variable names, each optionally ending in `*` (a prefix).
    pub(crate) fn env_patterns(v: &Value) -> Parsed<Vec<String>> {
        let arr = v
            .as_array()
            .ok_or_else(|| format!("expected a list of names, found {}", v.type_name()))?;
        arr.iter()
            .map(|x| {
                let s = Self::non_empty_string(x)?;
                let name = s.strip_suffix('*').unwrap_or(&s);
                let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if valid && (!name.is_empty() || s == "*") {
                    Ok(s.clone())
                } else {
                    Err(format!("`{s}` is not an environment variable name (letters, digits and _, optionally ending in *)"))
                }
            })
            .collect()
    }

    /// Staff roles (`["admin", "approver"]`). Vendor engineers are not accepted yet: their
    /// sessions (SSH, the designated client) do not ask for a second factor yet, and a
    /// setting that covered only their web logins would promise more than it does.
    pub(crate) fn roles(v: &Value) -> Parsed<Vec<Role>> {
        let Some(items) = v.as_array() else {
            return Err("expected a list of roles, e.g. [\"admin\", \"approver\"]".into());
        };
        let mut out = vec![];
        for item in items {
            match item.as_str() {
                Some("admin") => out.push(Role::Admin),
                Some("approver") => out.push(Role::Approver),
                Some("auditor") => out.push(Role::Auditor),
                Some("vendor") => out.push(Role::Vendor),
                _ => return Err("expected admin, approver, auditor or vendor".into()),
            }
        }
        Ok(out)
    }

    /// A list of `HOST:PORT` strings (NTP servers).
    pub(crate) fn host_ports(v: &Value) -> Parsed<Vec<String>> {
        let Some(items) = v.as_array() else {
            return Err("expected a list of \"HOST:PORT\" strings".into());
        };
        let mut out = vec![];
        for item in items {
            match item
                .as_str()
                .and_then(|s| s.rsplit_once(':').map(|(h, p)| (s, h, p)))
            {
                Some((s, h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {
                    out.push(s.to_owned());
                }
                _ => return Err("expected \"HOST:PORT\", e.g. \"ntp.hospital.example:123\"".into()),
            }
        }
        Ok(out)
    }

    /// A command as a list of strings (program first), e.g. `["/usr/bin/scan", "--strict"]`.
    pub(crate) fn command(v: &Value) -> Parsed<Vec<String>> {
        let Some(items) = v.as_array() else {
            return Err("expected a list of strings, the program first".into());
        };
        let mut out = vec![];
        for item in items {
            match item.as_str() {
                Some(s) if !s.is_empty() => out.push(s.to_owned()),
                _ => return Err("expected a list of non-empty strings, the program first".into()),
            }
        }
        Ok(out)
    }

    pub(crate) fn socket_addr(v: &Value) -> Parsed<SocketAddr> {
        let s = Self::non_empty_string(v)?;
        s.parse()
            .map_err(|_| format!("`{s}` is not an address with a port, e.g. 127.0.0.1:8080"))
    }

    pub(crate) fn database_url(v: &Value) -> Parsed<String> {
        let s = Self::non_empty_string(v)?;
        if s.starts_with("sqlite:")
            || s.starts_with("postgres://")
            || s.starts_with("postgresql://")
        {
            Ok(s)
        } else {
            Err("must start with sqlite:, postgres:// or postgresql://".into())
        }
    }

    pub(crate) fn zone(v: &Value) -> Parsed<String> {
        let s = Self::non_empty_string(v)?;
        DisplayZone::named(&s)
            .map(|_| s.clone())
            .map_err(|_| format!("`{s}` is not a known time zone (IANA name such as Asia/Tokyo)"))
    }

    pub(crate) fn log_format(v: &Value) -> Parsed<LogFormat> {
        match Self::non_empty_string(v)?.as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("`{other}` is not a log format: use text or json")),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}
