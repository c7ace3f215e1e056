//! The `#[task]` attribute of `brine-guest`. Use it through `brine_guest::task`; this
//! crate is an implementation detail and its output refers to `::brine_guest`.
//!
//! For `#[task] fn name(args: A) -> R` it keeps `name` as it is (so it can be called and
//! unit-tested as plain Rust) and adds, next to it, a hidden
//! `pub unsafe extern "C-unwind" fn __brine_task_name(args_ptr: *mut u8, args_len: usize,
//! encoding: i32) -> i32` which, on `wasm32`, is exported under the task's name with the
//! Brine ABI v1 entry signature. All the work happens in `brine_guest::__private::run_task`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{FnArg, Ident, ItemFn, LitStr, ReturnType, Type, parse_macro_input};

/// Turns a function into a Brine task export. See `brine_guest::task` for the full
/// documentation.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut export: Option<LitStr> = None;
    let options = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            export = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown #[task] option; the only one is `name = \"export_name\"`"))
        }
    });
    parse_macro_input!(attr with options);
    let func = parse_macro_input!(item as ItemFn);
    match expand(export, &func) {
        Ok(tokens) => tokens.into(),
        // Keep the function itself so one mistake doesn't cascade into "cannot find
        // function" errors at every call site.
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#func #error).into()
        }
    }
}

fn expand(export: Option<LitStr>, func: &ItemFn) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    if let Some(token) = &sig.asyncness {
        return Err(syn::Error::new_spanned(
            token,
            "a Brine task cannot be `async`",
        ));
    }
    if let Some(token) = &sig.unsafety {
        return Err(syn::Error::new_spanned(
            token,
            "a Brine task cannot be `unsafe`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a Brine task cannot be generic: the export needs concrete argument and result types",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            "a Brine task cannot be variadic",
        ));
    }

    let ident = &sig.ident;
    let (name, name_span) = match &export {
        Some(lit) => (lit.value(), lit.span()),
        None => (ident.unraw().to_string(), ident.span()),
    };
    check_name(&name, name_span)?;

    let arg_type: Option<&Type> = match sig.inputs.len() {
        0 => None,
        1 => match &sig.inputs[0] {
            FnArg::Typed(typed) => Some(&typed.ty),
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new_spanned(
                    receiver,
                    "a Brine task is a free function, not a method",
                ));
            }
        },
        _ => {
            return Err(syn::Error::new_spanned(
                &sig.inputs,
                "a Brine task takes at most one argument; bundle several into a struct or a tuple",
            ));
        }
    };

    let fallible = match &sig.output {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) => is_result(ty),
    };

    // Mixed-site (hygienic) names for the expansion's own locals, so they can never
    // shadow, or be shadowed by, the user's names (a task may well be called `encoding`).
    let local = |name: &str| Ident::new(name, Span::mixed_site());
    let (args, ptr, len, encoding) = (
        local("args"),
        local("args_ptr"),
        local("args_len"),
        local("encoding"),
    );
    let call = match arg_type {
        Some(_) => quote!(#ident(#args)),
        None => quote!(#ident()),
    };
    let param = match arg_type {
        Some(ty) => quote!(#args: #ty),
        None => quote!((): ()),
    };
    let body = if fallible {
        quote!(::core::result::Result::map_err(#call, ::brine_guest::__private::error_message))
    } else {
        quote!(::core::result::Result::<_, ::std::string::String>::Ok(#call))
    };

    let wrapper = format_ident!("__brine_task_{}", ident.unraw());
    let export_lit = LitStr::new(&name, Span::call_site());
    let doc = format!(
        "Brine ABI v1 entry of the task `{name}` (exported under that name on `wasm32`).\n\n\
         # Safety\n\n\
         Unless `args_len` is 0, `args_ptr` must be a pointer returned by \
         `__brine_alloc(args_len)` whose bytes hold the encoded arguments; the entry takes \
         ownership of (and frees) that buffer."
    );

    Ok(quote! {
        #func

        #[doc = #doc]
        #[doc(hidden)]
        #[cfg_attr(target_arch = "wasm32", unsafe(export_name = #export_lit))]
        pub unsafe extern "C-unwind" fn #wrapper(
            #ptr: *mut u8,
            #len: usize,
            #encoding: i32,
        ) -> i32 {
            // SAFETY: this function's own contract (see its `# Safety`) is exactly
            // `run_task`'s: the pointer and length are passed on unchanged.
            unsafe {
                ::brine_guest::__private::run_task(
                    #ptr,
                    #len,
                    #encoding,
                    |#param| #body,
                )
            }
        }
    })
}

/// Export names the ABI reserves (or that would clash with the module's own exports).
fn check_name(name: &str, span: Span) -> syn::Result<()> {
    if name.is_empty() {
        return Err(syn::Error::new(span, "a Brine task name cannot be empty"));
    }
    if name.starts_with('_') {
        return Err(syn::Error::new(
            span,
            format!(
                "task name `{name}` is reserved: names starting with `_` (and `__brine`) are \
                 never treated as tasks; rename the function or use #[task(name = \"...\")]"
            ),
        ));
    }
    if name == "memory" {
        return Err(syn::Error::new(
            span,
            "task name `memory` would clash with the module's exported memory",
        ));
    }
    Ok(())
}

/// Whether the return type is spelled as some `Result` (`Result<T, E>`, `io::Result<T>`,
/// `anyhow::Result<T>`, …). A macro cannot see through type aliases, so this goes by the
/// last path segment's name; a function returning such a type reports `Err(e)` as a guest
/// error (return code 1) through `E: Display`.
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        Type::Group(group) => is_result(&group.elem),
        Type::Paren(paren) => is_result(&paren.elem),
        _ => false,
    }
}
