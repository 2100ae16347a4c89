; Python extraction query.  Capture conventions (shared by every language, read by parse.py):
;   @def.<kind>      a definition node, <kind> a SymbolKind value; @name is its name.
;                    A function whose parent symbol is a class becomes a method in parse.py.
;   @ref.<kind>      a reference, <kind> a RefKind value (call, inherits, implements, references);
;                    @ref.annotation is a whole annotation whose names parse.py pulls out.
;   @import.module / @import.name / @import.alias   one imported binding;
;                    (#set! name ...) fixes the name, (#set! derive "head") makes the alias the
;                    first dotted part of the module (`import os.path` binds `os`).
;   Captures starting with "_" only serve predicates.

; ---- definitions
(function_definition name: (identifier) @name) @def.function
(class_definition name: (identifier) @name) @def.class
(module
  (expression_statement
    (assignment left: (identifier) @name) @def.constant)
  (#match? @name "^_*[A-Z][A-Z0-9_]*$"))

; ---- references
(call function: [(identifier) (attribute)] @ref.call)
(class_definition superclasses: (argument_list [(identifier) (attribute)] @ref.inherits))
(class_definition superclasses: (argument_list (subscript value: [(identifier) (attribute)] @ref.inherits)))
(typed_parameter type: (type) @ref.annotation)
(typed_default_parameter type: (type) @ref.annotation)
(function_definition return_type: (type) @ref.annotation)
(assignment type: (type) @ref.annotation)

; ---- imports
(import_statement name: (dotted_name) @import.module (#set! derive "head"))
(import_statement
  name: (aliased_import name: (dotted_name) @import.module alias: (identifier) @import.alias))
(import_from_statement module_name: (_) @import.module name: (dotted_name) @import.name)
(import_from_statement
  module_name: (_) @import.module
  name: (aliased_import name: (dotted_name) @import.name alias: (identifier) @import.alias))
(import_from_statement module_name: (_) @import.module (wildcard_import) (#set! name "*"))
