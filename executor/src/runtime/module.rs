//! A module ready to run tasks: compiled, checked against the ABI, linked (its
//! `InstancePre`), so a warm task only instantiates and calls.

use std::collections::HashMap;
use std::fmt;

use brine_proto::payload::{ErrorKind, ModuleHash, TaskFailure};
use wasmtime::{ExternType, FuncType, InstancePre, Linker, Module, ModuleExport, ValType};

use super::abi;
use super::error::{describe, failure};
use super::host::HostState;

/// A compiled, checked and linked module. Shared by all its tasks (`Arc`).
pub struct LoadedModule {
    hash: ModuleHash,
    pre: InstancePre<HostState>,
    alloc: ModuleExport,
    initialize: Option<ModuleExport>,
    memory: ModuleExport,
    /// Every task entry by name, resolved once: a warm task then finds its entry with
    /// one hash lookup instead of a search of the exports by name (twice).
    entries: HashMap<String, ModuleExport>,
}

impl LoadedModule {
    /// Checks `module` against ABI v1 and links it.
    pub(crate) fn prepare(
        hash: ModuleHash,
        module: &Module,
        linker: &Linker<HostState>,
    ) -> Result<Self, TaskFailure> {
        check_marker(module)?;
        check_imports(module)?;
        check_exports(module)?;
        let pre = linker
            .instantiate_pre(module)
            .map_err(|e| failure(ErrorKind::ModuleInvalid, describe(&e)))?;
        let alloc = export_index(module, abi::ALLOC)?;
        let initialize = module.get_export_index(abi::INITIALIZE);
        let memory = export_index(module, abi::MEMORY)?;
        let entries = module
            .exports()
            .filter(|e| !abi::is_reserved(e.name()))
            .filter(|e| matches!(e.ty(), ExternType::Func(f) if is_entry(&f)))
            .filter_map(|e| Some((e.name().to_owned(), module.get_export_index(e.name())?)))
            .collect();
        Ok(Self {
            hash,
            pre,
            alloc,
            initialize,
            memory,
            entries,
        })
    }

    /// The module's content hash.
    pub fn hash(&self) -> ModuleHash {
        self.hash
    }

    /// The module's compiled code.
    pub fn module(&self) -> &Module {
        self.pre.module()
    }

    /// The names of the tasks the module exports, sorted.
    pub fn tasks(&self) -> Vec<String> {
        let mut tasks: Vec<String> = self
            .module()
            .exports()
            .filter(|e| !abi::is_reserved(e.name()))
            .filter(|e| matches!(e.ty(), ExternType::Func(f) if is_entry(&f)))
            .map(|e| e.name().to_owned())
            .collect();
        tasks.sort();
        tasks
    }

    /// Checks that `export` names a task entry, `func(i32, i32, i32) -> i32`.
    pub(crate) fn check_entry(&self, export: &str) -> Result<(), TaskFailure> {
        if self.entries.contains_key(export) {
            return Ok(());
        }
        let missing = |message: String| Err(failure(ErrorKind::ExportMissing, message));
        if abi::is_reserved(export) {
            return missing(format!(
                "`{export}` is reserved by the Brine ABI (names starting with `_`) and is not a task"
            ));
        }
        match self.module().get_export(export) {
            None => missing(format!(
                "the module exports no task `{export}` (its tasks: {})",
                list_or_none(&self.tasks())
            )),
            Some(ExternType::Func(f)) if is_entry(&f) => Ok(()),
            Some(ExternType::Func(f)) => missing(format!(
                "export `{export}` has type {f}; a task entry is \
                 (func (param i32 i32 i32) (result i32))"
            )),
            Some(other) => missing(format!(
                "export `{export}` is a {}, not a task entry function",
                extern_kind(&other)
            )),
        }
    }

    pub(crate) fn pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    pub(crate) fn alloc(&self) -> &ModuleExport {
        &self.alloc
    }

    pub(crate) fn initialize(&self) -> Option<&ModuleExport> {
        self.initialize.as_ref()
    }

    pub(crate) fn memory(&self) -> &ModuleExport {
        &self.memory
    }

    /// The task entry `name`, if it is one.
    pub(crate) fn entry(&self, name: &str) -> Option<&ModuleExport> {
        self.entries.get(name)
    }
}

impl fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModule")
            .field("hash", &self.hash)
            .field("tasks", &self.tasks())
            .finish()
    }
}

/// The module must export `__brine_abi_v1`; others are named in the refusal.
fn check_marker(module: &Module) -> Result<(), TaskFailure> {
    match module.get_export(abi::MARKER_V1) {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => Ok(()),
        Some(_) => Err(failure(
            ErrorKind::AbiMismatch,
            format!("`{}` must be a func() marker", abi::MARKER_V1),
        )),
        None => {
            let declared: Vec<String> = module
                .exports()
                .filter_map(|e| e.name().strip_prefix(abi::MARKER_PREFIX))
                .map(|v| format!("v{v}"))
                .collect();
            Err(failure(
                ErrorKind::AbiMismatch,
                format!(
                    "not a Brine v1 module: no `{}` export (module declares: {}); \
                     this executor supports ABI versions: {}",
                    abi::MARKER_V1,
                    list_or_none(&declared),
                    abi::supported_versions()
                ),
            ))
        }
    }
}

/// Imports only from `brine` and `wasi_snapshot_preview1`; whether the names and types
/// exist there is the linker's check.
fn check_imports(module: &Module) -> Result<(), TaskFailure> {
    for import in module.imports() {
        if !abi::ALLOWED_IMPORT_MODULES.contains(&import.module()) {
            return Err(failure(
                ErrorKind::ModuleInvalid,
                format!(
                    "import `{}::{}` is not allowed: a Brine task may only import from `{}` \
                     and `{}`",
                    import.module(),
                    import.name(),
                    abi::BRINE_MODULE,
                    abi::WASI_MODULE
                ),
            ));
        }
    }
    Ok(())
}

/// `memory` (32-bit), `__brine_alloc: func(i32) -> i32`, and `_initialize: func()` if
/// present.
fn check_exports(module: &Module) -> Result<(), TaskFailure> {
    let invalid = |message: String| Err(failure(ErrorKind::ModuleInvalid, message));
    match module.get_export(abi::MEMORY) {
        Some(ExternType::Memory(m)) if !m.is_64() => {}
        _ => return invalid(format!("the module must export a 32-bit `{}`", abi::MEMORY)),
    }
    match module.get_export(abi::ALLOC) {
        Some(ExternType::Func(f)) if is_i32s(f.params(), 1) && is_i32s(f.results(), 1) => {}
        _ => {
            return invalid(format!(
                "the module must export `{}: func(i32) -> i32` (ABI v1)",
                abi::ALLOC
            ));
        }
    }
    match module.get_export(abi::INITIALIZE) {
        None => Ok(()),
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => Ok(()),
        Some(_) => invalid(format!("`{}` must be a func()", abi::INITIALIZE)),
    }
}

/// The module limits, checked on the bytes before anything else is done with them:
/// at most `max_bytes` bytes and `max_functions` defined functions. Only the section
/// headers and the function section's count are read; bytes that are not a module
/// (or are cut short) pass, and compilation then says what is wrong with them.
pub(crate) fn check_limits(
    bytes: &[u8],
    max_bytes: u64,
    max_functions: u32,
) -> Result<(), TaskFailure> {
    let invalid = |message: String| Err(failure(ErrorKind::ModuleInvalid, message));
    let len = bytes.len() as u64;
    if len > max_bytes {
        return invalid(format!(
            "module of {len} bytes is larger than the limit of {max_bytes} bytes \
             (RuntimeConfig::max_module_bytes)"
        ));
    }
    match defined_functions(bytes) {
        Some(count) if count > max_functions => invalid(format!(
            "module defines {count} functions, more than the limit of {max_functions} \
             (RuntimeConfig::max_module_functions)"
        )),
        _ => Ok(()),
    }
}

/// The count of the function section (the functions a module defines), 0 without one;
/// `None` when the bytes are not a well-formed core module that far.
fn defined_functions(bytes: &[u8]) -> Option<u32> {
    const FUNCTION_SECTION: u8 = 3;
    if bytes.get(..8)? != b"\0asm\x01\0\0\0" {
        return None;
    }
    let mut at = 8;
    while at < bytes.len() {
        let id = *bytes.get(at)?;
        let (size, next) = leb_u32(bytes, at + 1)?;
        let end = next.checked_add(size as usize)?;
        let contents = bytes.get(next..end)?;
        if id == FUNCTION_SECTION {
            return leb_u32(contents, 0).map(|(count, _)| count);
        }
        at = end;
    }
    Some(0)
}

/// An unsigned LEB128 `u32` at `at`: its value and the index after it.
fn leb_u32(bytes: &[u8], at: usize) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let byte = *bytes.get(at + i)?;
        let bits = u32::from(byte & 0x7f);
        if i == 4 && bits > 0x0f {
            return None;
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, at + i + 1));
        }
    }
    None
}

fn export_index(module: &Module, name: &str) -> Result<ModuleExport, TaskFailure> {
    module
        .get_export_index(name)
        .ok_or_else(|| failure(ErrorKind::ModuleInvalid, format!("missing export `{name}`")))
}

fn is_entry(f: &FuncType) -> bool {
    is_i32s(f.params(), 3) && is_i32s(f.results(), 1)
}

fn is_i32s(mut types: impl ExactSizeIterator<Item = ValType>, count: usize) -> bool {
    types.len() == count && types.all(|t| matches!(t, ValType::I32))
}

fn extern_kind(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Func(_) => "function",
        ExternType::Global(_) => "global",
        ExternType::Table(_) => "table",
        ExternType::Memory(_) => "memory",
        ExternType::Tag(_) => "tag",
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leb(mut value: u32) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// A module of `count` empty functions (type, function and code sections).
    fn functions(count: u32) -> Vec<u8> {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend([1, 4, 1, 0x60, 0, 0]);
        let mut section = leb(count);
        section.extend(std::iter::repeat_n(0, count as usize));
        module.push(3);
        module.extend(leb(section.len() as u32));
        module.extend(section);
        let mut code = leb(count);
        for _ in 0..count {
            code.extend([2, 0, 0x0b]);
        }
        module.push(10);
        module.extend(leb(code.len() as u32));
        module.extend(code);
        module
    }

    #[test]
    fn the_function_count_is_read_from_the_function_section() {
        assert_eq!(defined_functions(&functions(0)), Some(0));
        assert_eq!(defined_functions(&functions(3)), Some(3));
        assert_eq!(defined_functions(&functions(200)), Some(200));
        assert_eq!(defined_functions(b"\0asm\x01\0\0\0"), Some(0));
        // Not a module, or cut short: left to the compiler.
        assert_eq!(defined_functions(b"not wasm"), None);
        let module = functions(200);
        for cut in 9..module.len() - 1 {
            let _ = defined_functions(&module[..cut]);
        }
        assert_eq!(defined_functions(&module[..12]), None);
        assert_eq!(
            leb_u32(&[0xff, 0xff, 0xff, 0xff, 0x0f], 0),
            Some((u32::MAX, 5))
        );
        assert_eq!(leb_u32(&[0xff, 0xff, 0xff, 0xff, 0x1f], 0), None);
        assert_eq!(leb_u32(&[0x80, 0x80], 0), None);
    }

    #[test]
    fn limits_refuse_large_modules_and_many_functions() {
        assert!(check_limits(&functions(10), 1 << 20, 10).is_ok());
        let failure = check_limits(&functions(11), 1 << 20, 10).unwrap_err();
        assert_eq!(failure.kind, ErrorKind::ModuleInvalid);
        assert!(
            failure.message.contains("defines 11 functions"),
            "{failure:?}"
        );
        let failure = check_limits(&functions(10), 20, 10).unwrap_err();
        assert!(
            failure
                .message
                .contains("larger than the limit of 20 bytes")
        );
        assert!(check_limits(b"not wasm", 1 << 20, 10).is_ok());
    }
}
