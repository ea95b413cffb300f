//! rfai's results channel (fd 3) and the encoding of observed values (the same tags as
//! `_pyharness.encode`), by exact type. A type without `Encode` is reported as such (through
//! the `Opaque` fallback), and the check it belongs to fails.
#![allow(dead_code)]

use ::std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use ::std::fmt::Write as _;
use ::std::io::Write as _;

pub struct Out {
    file: ::std::fs::File,
}

impl Out {
    pub fn open() -> Out {
        use ::std::os::unix::io::FromRawFd;
        Out { file: unsafe { ::std::fs::File::from_raw_fd(3) } }
    }
    fn line(&mut self, event: String) {
        let _ = self.file.write_all((event + "\n").as_bytes());
    }
    pub fn finished(&mut self, case: usize) {
        self.line(::std::format!("{{\"case\": {}, \"done\": true}}", case));
    }
    pub fn failed(&mut self, case: usize, why: &str) {
        let short: ::std::string::String = why.chars().take(200).collect();
        self.line(::std::format!("{{\"case\": {}, \"error\": {}}}", case, quote(&short)));
    }
    pub fn value(&mut self, case: usize, k: usize, value: Option<::std::string::String>) {
        match value {
            Some(text) => self.line(::std::format!("{{\"case\": {}, \"obs\": {}, \"value\": {}}}", case, k, text)),
            None => self.line(::std::format!(
                "{{\"case\": {}, \"obs\": {}, \"error\": \"a value of a type rfai cannot check outside the program\"}}", case, k)),
        }
    }
}

pub fn quote(text: &str) -> ::std::string::String {
    let mut out = ::std::string::String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => { let _ = ::std::write!(out, "\\u{:04x}", c as u32); }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub trait Encode {
    fn encode(&self, out: &mut ::std::string::String);
}

macro_rules! integers { ($($t:ty),*) => { $(impl Encode for $t {
    fn encode(&self, out: &mut ::std::string::String) { let _ = ::std::write!(out, "{{\"i\": \"{}\"}}", self); }
})* } }
integers!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

macro_rules! floats { ($($t:ty),*) => { $(impl Encode for $t {
    fn encode(&self, out: &mut ::std::string::String) { let _ = ::std::write!(out, "{{\"f\": \"{:?}\"}}", self); }
})* } }
floats!(f32, f64);

impl Encode for bool {
    fn encode(&self, out: &mut ::std::string::String) { out.push_str(if *self { "true" } else { "false" }); }
}
impl Encode for char {
    fn encode(&self, out: &mut ::std::string::String) { out.push_str(&quote(&self.to_string())); }
}
impl Encode for str {
    fn encode(&self, out: &mut ::std::string::String) { out.push_str(&quote(self)); }
}
impl Encode for ::std::string::String {
    fn encode(&self, out: &mut ::std::string::String) { out.push_str(&quote(self)); }
}
impl Encode for () {
    fn encode(&self, out: &mut ::std::string::String) { out.push_str("{\"t\": []}"); }
}
impl<T: Encode + ?Sized> Encode for &T {
    fn encode(&self, out: &mut ::std::string::String) { (**self).encode(out) }
}
impl<T: Encode + ?Sized> Encode for &mut T {
    fn encode(&self, out: &mut ::std::string::String) { (**self).encode(out) }
}
impl<T: Encode + ?Sized> Encode for Box<T> {
    fn encode(&self, out: &mut ::std::string::String) { (**self).encode(out) }
}

fn items<'a, T: Encode + 'a>(out: &mut ::std::string::String, values: impl Iterator<Item = &'a T>) {
    for (i, value) in values.enumerate() {
        if i > 0 { out.push_str(", "); }
        value.encode(out);
    }
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, out: &mut ::std::string::String) { out.push('['); items(out, self.iter()); out.push(']'); }
}
impl<T: Encode, const N: usize> Encode for [T; N] {
    fn encode(&self, out: &mut ::std::string::String) { self[..].encode(out) }
}
impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut ::std::string::String) { self[..].encode(out) }
}
impl<T: Encode> Encode for VecDeque<T> {
    fn encode(&self, out: &mut ::std::string::String) { out.push('['); items(out, self.iter()); out.push(']'); }
}
impl<T: Encode> Encode for HashSet<T> {
    fn encode(&self, out: &mut ::std::string::String) { out.push_str("{\"s\": ["); items(out, self.iter()); out.push_str("]}"); }
}
impl<T: Encode> Encode for BTreeSet<T> {
    fn encode(&self, out: &mut ::std::string::String) { out.push_str("{\"s\": ["); items(out, self.iter()); out.push_str("]}"); }
}

fn entries<'a, K: Encode + 'a, V: Encode + 'a>(out: &mut ::std::string::String, values: impl Iterator<Item = (&'a K, &'a V)>) {
    out.push_str("{\"d\": [");
    for (i, (key, value)) in values.enumerate() {
        out.push_str(if i > 0 { ", [" } else { "[" });
        key.encode(out);
        out.push_str(", ");
        value.encode(out);
        out.push(']');
    }
    out.push_str("]}");
}

impl<K: Encode, V: Encode> Encode for HashMap<K, V> {
    fn encode(&self, out: &mut ::std::string::String) { entries(out, self.iter()) }
}
impl<K: Encode, V: Encode> Encode for BTreeMap<K, V> {
    fn encode(&self, out: &mut ::std::string::String) { entries(out, self.iter()) }
}
impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut ::std::string::String) {
        match self {
            Some(value) => { out.push_str("{\"v\": [\"Some\", "); value.encode(out); out.push_str("]}"); }
            None => out.push_str("{\"v\": [\"None\"]}"),
        }
    }
}
impl<T: Encode, E: Encode> Encode for Result<T, E> {
    fn encode(&self, out: &mut ::std::string::String) {
        match self {
            Ok(value) => { out.push_str("{\"v\": [\"Ok\", "); value.encode(out); out.push_str("]}"); }
            Err(error) => { out.push_str("{\"v\": [\"Err\", "); error.encode(out); out.push_str("]}"); }
        }
    }
}

macro_rules! tuples { ($(($($name:ident $index:tt),+)),*) => { $(impl<$($name: Encode),+> Encode for ($($name,)+) {
    fn encode(&self, out: &mut ::std::string::String) {
        out.push_str("{\"t\": [");
        let mut first = true;
        $( if !first { out.push_str(", "); } first = false; self.$index.encode(out); )+
        let _ = first;
        out.push_str("]}");
    }
})* } }
tuples!((A 0), (A 0, B 1), (A 0, B 1, C 2), (A 0, B 1, C 2, D 3), (A 0, B 1, C 2, D 3, E 4));

/// `(&Probe(&value)).rfai_encode(..)` picks `Plain` when the type has `Encode`, else `Opaque`.
pub struct Probe<'a, T: ?Sized>(pub &'a T);

pub trait Plain {
    fn rfai_encode(&self, out: &mut Out, case: usize, k: usize);
}
impl<'a, T: Encode + ?Sized> Plain for Probe<'a, T> {
    fn rfai_encode(&self, out: &mut Out, case: usize, k: usize) {
        let mut text = ::std::string::String::new();
        self.0.encode(&mut text);
        out.value(case, k, Some(text));
    }
}

pub trait Opaque {
    fn rfai_encode(&self, out: &mut Out, case: usize, k: usize);
}
impl<'a, T: ?Sized> Opaque for &Probe<'a, T> {
    fn rfai_encode(&self, out: &mut Out, case: usize, k: usize) { out.value(case, k, None); }
}
