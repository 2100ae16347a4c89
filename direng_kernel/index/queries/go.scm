; Go extraction query; capture conventions are described in python.scm.
; Methods are qualified by their receiver type in parse.py (`Server.Serve`).

; ---- definitions
(function_declaration name: (identifier) @name) @def.function
(method_declaration name: (field_identifier) @name) @def.method
(type_spec name: (type_identifier) @name type: (struct_type)) @def.struct
(type_spec name: (type_identifier) @name type: (interface_type)) @def.interface
(type_spec
  name: (type_identifier) @name
  type: [(type_identifier) (qualified_type) (generic_type) (pointer_type) (array_type) (slice_type)
         (map_type) (channel_type) (function_type) (parenthesized_type) (negated_type)]) @def.type
(type_alias name: (type_identifier) @name) @def.type
(source_file (const_declaration (const_spec name: (identifier) @name) @def.constant))
(source_file (var_declaration (var_spec name: (identifier) @name) @def.constant))
(source_file (var_declaration (var_spec_list (var_spec name: (identifier) @name) @def.constant)))

; ---- references
(call_expression function: [(identifier) (selector_expression)] @ref.call)
; Embedding: a field without a name, an interface element that is a single type.
(field_declaration_list (field_declaration !name type: (_) @ref.inherits))
(interface_type (type_elem . [(type_identifier) (qualified_type) (generic_type)] @ref.inherits .))
(type_identifier) @ref.references
(qualified_type) @ref.references
(type_parameter_declaration name: (identifier) @typeparam)

; ---- imports: the binding is the explicit name, else the last path segment.
(import_spec
  name: (_)? @import.alias
  path: (interpreted_string_literal (interpreted_string_literal_content) @import.module)
  (#set! derive "tail"))
