; Rust extraction query; capture conventions are described in python.scm.
; Impl blocks have no name capture: parse.py names them `impl Trait for Type` and emits the
; `implements` reference, and qualifies their methods by the type (`Point.fmt`).

; ---- definitions
(function_item name: (identifier) @name) @def.function
(function_signature_item name: (identifier) @name) @def.function
(struct_item name: (type_identifier) @name) @def.struct
(union_item name: (type_identifier) @name) @def.struct
(enum_item name: (type_identifier) @name) @def.enum
(trait_item name: (type_identifier) @name) @def.trait
(impl_item) @def.impl
(type_item name: (type_identifier) @name) @def.type
(mod_item name: (identifier) @name body: (declaration_list)) @def.module
(source_file [(const_item name: (identifier) @name) (static_item name: (identifier) @name)] @def.constant)
(mod_item
  body: (declaration_list
    [(const_item name: (identifier) @name) (static_item name: (identifier) @name)] @def.constant))

; ---- references
(call_expression
  function: [(identifier) (field_expression) (scoped_identifier) (generic_function)] @ref.call)
; Inside a macro's arguments (`tri!(self.parse_escape(read))`) tree-sitter keeps only tokens: a
; name directly followed by a parenthesised token tree is a call (a method's receiver is not
; known there, so `self.parse_escape(…)` is the call `parse_escape`).
(token_tree (identifier) @ref.call . (token_tree . "("))
(trait_item
  bounds: (trait_bounds [(type_identifier) (scoped_type_identifier) (generic_type)] @ref.inherits))
(type_identifier) @ref.references
(scoped_type_identifier) @ref.references
(type_parameter name: (type_identifier) @typeparam)

; ---- imports: each leaf of a `use` tree; parse.py joins the paths of the enclosing lists.
(use_declaration
  argument: [(identifier) (scoped_identifier) (use_as_clause) (use_wildcard)] @import.use)
(use_list [(identifier) (scoped_identifier) (use_as_clause) (use_wildcard) (self)] @import.use)
