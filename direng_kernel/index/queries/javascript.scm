; JavaScript (and JSX) extraction query; capture conventions are described in python.scm.

; ---- definitions
(function_declaration name: (identifier) @name) @def.function
(generator_function_declaration name: (identifier) @name) @def.function
(class_declaration name: (identifier) @name) @def.class
(method_definition name: (_) @name) @def.method
(field_definition
  property: (property_identifier) @name
  value: [(arrow_function) (function_expression)]) @def.method
(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @def.function
; Any other top-level `const X = …` is a constant (a function-valued one stays a function:
; parse.py lets any other kind of the same node win over constant). `require` bindings are imports, not constants.
(program
  (lexical_declaration kind: "const"
    (variable_declarator name: (identifier) @name value: (_) @_value) @def.constant)
  (#not-match? @_value "^require\\("))
(program
  (export_statement
    declaration: (lexical_declaration kind: "const"
      (variable_declarator name: (identifier) @name) @def.constant)))

; ---- references
(call_expression function: [(identifier) (member_expression)] @ref.call)
(new_expression constructor: [(identifier) (member_expression)] @ref.call)
(class_heritage [(identifier) (member_expression)] @ref.inherits)

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
