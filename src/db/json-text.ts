/**
 * JSON already serialized, tagged with the type of the value it encodes (a compile-time tag only:
 * at run time it is a plain string). Lets a response built as text (by PostgreSQL, or kept from an
 * earlier request) be checked against the route's schema like a value passed to c.json.
 */
export type JsonText<T> = string & { readonly __jsonOf?: T };
