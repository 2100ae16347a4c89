; TypeScript / TSX extraction query; capture conventions are described in python.scm.
; Mostly javascript.scm again: the TS grammar renames enough nodes (class names are
; type_identifiers, `extends` has its own clause) that the JS patterns do not compile here.

; ---- definitions
(function_declaration name: (identifier) @name) @def.function
(generator_function_declaration name: (identifier) @name) @def.function
(class_declaration name: (type_identifier) @name) @def.class
(abstract_class_declaration name: (type_identifier) @name) @def.class
(method_definition name: (_) @name) @def.method
(abstract_method_signature name: (_) @name) @def.method
(public_field_definition
  name: (property_identifier) @name
  value: [(arrow_function) (function_expression)]) @def.method
(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @def.function
(program
  (lexical_declaration kind: "const"
    (variable_declarator name: (identifier) @name value: (_) @_value) @def.constant)
  (#not-match? @_value "^require\\("))
(program
  (export_statement
    declaration: (lexical_declaration kind: "const"
      (variable_declarator name: (identifier) @name) @def.constant)))
(interface_declaration name: (type_identifier) @name) @def.interface
(type_alias_declaration name: (type_identifier) @name) @def.type
(enum_declaration name: (identifier) @name) @def.enum
(internal_module name: (identifier) @name) @def.module

; ---- references
(call_expression function: [(identifier) (member_expression)] @ref.call)
(new_expression constructor: [(identifier) (member_expression)] @ref.call)
(extends_clause value: (_) @ref.inherits)
(extends_type_clause type: (_) @ref.inherits)
(implements_clause (_) @ref.implements)
(type_identifier) @ref.references
(nested_type_identifier) @ref.references
; Type parameters are local names, not references to anything.
(type_parameter name: (type_identifier) @typeparam)

; ---- imports
(import_statement
  (import_clause (identifier) @import.alias)
  source: (string (string_fragment) @import.module)
  (#set! name "default"))
(import_statement
  (import_clause (namespace_import (identifier) @import.alias))
  source: (string (string_fragment) @import.module)
  (#set! name "*"))
(import_statement
  (import_clause (named_imports (import_specifier name: (_) @import.name alias: (_)? @import.alias)))
  source: (string (string_fragment) @import.module))
(variable_declarator
  name: (identifier) @import.alias
  value: (call_expression
    function: (identifier) @_require
    arguments: (arguments . (string (string_fragment) @import.module)))
  (#eq? @_require "require")
  (#set! name "*"))
(variable_declarator
  name: (object_pattern (shorthand_property_identifier_pattern) @import.name)
  value: (call_expression
    function: (identifier) @_require
    arguments: (arguments . (string (string_fragment) @import.module)))
  (#eq? @_require "require"))
; Re-exports (`export * from "./x"`, `export { a as b } from "./x"`) are imports the file's own
; importers see through: a barrel file (mobx's src/internal.ts) passes on what it re-exports.
(export_statement "*" source: (string (string_fragment) @import.module) (#set! name "*"))
(export_statement
  (export_clause (export_specifier name: (_) @import.name alias: (_)? @import.alias))
  source: (string (string_fragment) @import.module))
