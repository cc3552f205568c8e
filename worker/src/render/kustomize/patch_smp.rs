//! Strategic merge patches as kustomize v5 applies them, written to give the results of kyaml's merge walk
//! (`merge2.Merge` over `walk.Walker`) on parsed values.
//!
//! - Maps merge field by field; a patch `null` deletes a field; `$patch: delete|replace|merge`
//!   directives on maps and on list elements.
//! - Lists whose schema (kustomize's compiled-in Kubernetes v1.21.2 OpenAPI, see
//!   `merge_keys.rs`) declares the `merge` strategy are walked element by element, matched on
//!   their merge keys (`x-kubernetes-list-map-keys` when there are several): the patch's
//!   elements first, then those only the original has; elements with duplicate keys collapse,
//!   null and empty-map elements go. Every other list is replaced by the patch's list exactly
//!   as written, and never entered.
//! - Kinds without a schema (custom resources) get their lists replaced, unless a nested map
//!   names a known `apiVersion`/`kind` itself.
//! - A value of another node kind than the original's (a map over a list, a scalar over a map)
//!   is an error, as in kustomize.
//! - Nulls: the walk reaches every map of the patched object and every merged list, drops the
//!   null fields that were left empty in the source (`key:`) and keeps the spelled-out ones
//!   (`key: null`); nulls in lists it does not enter stay.
//!
//! kyaml mutates shared YAML nodes in place; where that shows in the result (a merged list's
//! element is the original's node, merged), elements are reference-counted cells.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value;

use super::merge_keys::{FieldInfo, TypeRef};
use super::yaml_load::{NullSpelling, resolve_plain};

/// Why a patch could not be applied natively.
pub enum Failure {
    /// A construct the engine does not implement.
    Unsupported(String),
    /// kustomize rejects the patch too.
    Invalid(String),
}

/// Applies `patch` to `dst`; `nulls` and `patch_nulls` say how their null fields were spelled.
/// Returns `None` when the patch deletes the whole object, else how the merged object's nulls
/// are spelled (a later merge walks it again).
pub fn apply(
    dst: &mut Value,
    nulls: &NullSpelling,
    patch: &Value,
    patch_nulls: &NullSpelling,
) -> Result<Option<NullSpelling>, Failure> {
    if directive(patch) == Some("delete") {
        return Ok(None);
    }
    if nulls
        .unknown
        .iter()
        .any(|p| dst.pointer(p).is_some_and(Value::is_null))
    {
        return Err(Failure::Unsupported(
            "strategic merge patch on an object with a null whose spelling is unknown".into(),
        ));
    }
    let ty = schema_of(dst, TypeRef::none());
    let mut dest = dst.clone();
    mark_empty(&mut dest, nulls);
    let mut patch = patch.clone();
    mark_empty(&mut patch, patch_nulls);
    let root = FieldInfo::none();
    match walk(Some(&dest), Some(&patch), ty, &root, false)? {
        Some((mut v, _)) if v.is_object() => {
            let mut spelling = NullSpelling::default();
            unmark_empty(&mut v, &mut String::new(), &mut spelling);
            *dst = v;
            Ok(Some(spelling))
        }
        _ => Ok(None),
    }
}

/// Stand-ins for the values left empty while the walk runs, so that their spelling travels with
/// them (kyaml keeps each scalar's text): a null, and an empty value that prints as `""` (in a
/// flow mapping, or a resource's annotation). NUL-prefixed, so never real text.
const EMPTY_NULL: &str = "\u{0}smp-empty-null";
const EMPTY_TEXT: &str = "\u{0}smp-empty-text";

fn mark_empty(v: &mut Value, nulls: &NullSpelling) {
    for p in &nulls.empty {
        if let Some(x) = v.pointer_mut(p) {
            if x.is_null() {
                *x = Value::String(EMPTY_NULL.into());
            } else if x.as_str() == Some("") {
                *x = Value::String(EMPTY_TEXT.into());
            }
        }
    }
}

fn unmark_empty(v: &mut Value, ptr: &mut String, out: &mut NullSpelling) {
    match v {
        Value::String(s) if s == EMPTY_NULL || s == EMPTY_TEXT => {
            out.empty.insert(ptr.clone());
            *v = if s == EMPTY_NULL {
                Value::Null
            } else {
                Value::String(String::new())
            };
        }
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&k.replace('~', "~0").replace('/', "~1"));
                unmark_empty(x, ptr, out);
                ptr.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&i.to_string());
                unmark_empty(x, ptr, out);
                ptr.truncate(len);
            }
        }
        _ => {}
    }
}

/// A null to the walk: written out, or left empty.
fn nullish(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s == EMPTY_NULL || s == EMPTY_TEXT,
        _ => false,
    }
}

/// The schema of a map: the one its place in the parent gives, else the one its own
/// `apiVersion`/`kind` name (kyaml looks a resource type up at every level that has none).
fn schema_of(v: &Value, ty: TypeRef) -> TypeRef {
    if ty.is_some() {
        return ty;
    }
    let av = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if av.is_empty() || kind.is_empty() {
        return ty;
    }
    TypeRef::for_gvk(av, kind)
}

fn merged_by_key(info: &FieldInfo) -> bool {
    info.strategy.split(',').any(|s| s == "merge")
}

fn directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

/// Which source a walk's result is (kyaml returns one of the two nodes, updated in place).
#[derive(Clone, Copy, PartialEq)]
enum Picked {
    Dest,
    Origin,
}

fn node_kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "MappingNode",
        Value::Array(_) => "SequenceNode",
        _ => "ScalarNode",
    }
}

/// kustomize refuses to merge a value of one node kind into another.
fn check_kinds(want: &Value, sources: [Option<&Value>; 2]) -> Result<(), Failure> {
    for s in sources.into_iter().flatten() {
        if !nullish(s) && node_kind(s) != node_kind(want) {
            return Err(Failure::Invalid(format!(
                "wrong node kind: expected {} but got {}",
                node_kind(want),
                node_kind(s)
            )));
        }
    }
    Ok(())
}

/// One step of the walk: the original's value (`dest`) and the patch's (`origin`) at the same
/// place, `ty` the schema of a map there, `info` what the parent's schema says of the field.
/// `same`: below a place where kyaml took the patch's node as the result, both sources are that
/// one node (what the walk changes in one, it changes in the other). `None` leaves the field out.
fn walk(
    dest: Option<&Value>,
    origin: Option<&Value>,
    ty: TypeRef,
    info: &FieldInfo,
    same: bool,
) -> Result<Option<(Value, Picked)>, Failure> {
    fn present(v: Option<&Value>) -> Option<&Value> {
        v.filter(|x| !nullish(x))
    }
    let Some(first) = present(dest).or(present(origin)) else {
        // Only nulls: a spelled-out null of the original stays when the patch says nothing, one
        // left empty goes.
        return Ok(match (dest, origin) {
            (Some(Value::Null), None) => Some((Value::Null, Picked::Dest)),
            _ => None,
        });
    };
    check_kinds(first, [dest, origin])?;
    match first {
        Value::Object(_) => walk_map(present(dest), origin, ty, same),
        Value::Array(_) if merged_by_key(info) => walk_assoc(present(dest), origin, ty, info, same),
        Value::Array(_) => Ok(match origin {
            Some(o) if nullish(o) => None,
            // Replaced as written, never entered.
            Some(o) => Some((o.clone(), Picked::Origin)),
            None => dest.map(|d| (d.clone(), Picked::Dest)),
        }),
        _ => Ok(match origin {
            Some(o) if nullish(o) => None,
            Some(o) => Some((o.clone(), Picked::Origin)),
            None => dest.map(|d| (d.clone(), Picked::Dest)),
        }),
    }
}

/// A map directive (`$patch`), removed from the map it is read from.
fn take_map_directive(v: &mut Value) -> Result<Option<String>, Failure> {
    let Some(m) = v.as_object_mut() else {
        return Ok(None);
    };
    match m.get("$patch") {
        None => Ok(None),
        Some(Value::String(s)) if matches!(s.as_str(), "delete" | "replace" | "merge") => {
            let s = s.clone();
            m.remove("$patch");
            Ok(Some(s))
        }
        Some(other) => Err(Failure::Invalid(format!(
            "unknown patch strategy '{}'",
            scalar_text(other)
        ))),
    }
}

fn walk_map(
    dest: Option<&Value>,
    origin: Option<&Value>,
    ty: TypeRef,
    same: bool,
) -> Result<Option<(Value, Picked)>, Failure> {
    let mut origin = origin.cloned();
    // The map the fields are set on, and the sources its fields are walked with.
    let (mut base, picked, dest_src) = match dest.filter(|_| !same) {
        None => {
            // Nothing in the original: the patch's map lands, walked against itself.
            let Some(mut o) = origin.clone() else {
                return Ok(None);
            };
            if take_map_directive(&mut o)?.as_deref() == Some("delete") {
                return Ok(None);
            }
            origin = Some(o.clone());
            (o.clone(), Picked::Origin, Some(o))
        }
        Some(d) => {
            if origin.as_ref().is_some_and(nullish) {
                return Ok(None);
            }
            let dir = match origin.as_mut() {
                Some(o) => take_map_directive(o)?,
                None => None,
            };
            match dir.as_deref() {
                Some("delete") => return Ok(None),
                Some("replace") => {
                    let o = origin.clone().unwrap_or(Value::Null);
                    (o.clone(), Picked::Origin, Some(o))
                }
                _ => (d.clone(), Picked::Dest, Some(d.clone())),
            }
        }
    };
    let same_below = same || picked == Picked::Origin;
    let ty = schema_of(dest_src.as_ref().unwrap_or(&base), ty);
    let ty = match &origin {
        Some(o) if !ty.is_some() => schema_of(o, ty),
        _ => ty,
    };
    let mut keys: Vec<String> = Vec::new();
    for src in [dest_src.as_ref(), origin.as_ref()].into_iter().flatten() {
        if let Value::Object(m) = src {
            for k in m.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    for k in keys {
        let from_patch = origin.as_ref().is_some_and(|o| o.get(&k).is_some());
        if from_patch && k.starts_with('$') && k != "$patch" {
            // $retainKeys, $setElementOrder/..., $deleteFromPrimitiveList/...: not implemented;
            // refusing beats silently ignoring them.
            return Err(Failure::Unsupported(format!(
                "strategic merge directive {k}"
            )));
        }
        let info = ty.field(&k);
        let d = dest_src.as_ref().and_then(|v| v.get(&k));
        let o = origin.as_ref().and_then(|v| v.get(&k));
        let val = walk(d, o, info.ty, &info, same_below)?;
        let Value::Object(bm) = &mut base else {
            break;
        };
        match val {
            Some((v, _)) => {
                bm.insert(k, v);
            }
            None => {
                bm.remove(&k);
            }
        }
    }
    Ok(Some((base, picked)))
}

/// A list element as a shared node (kyaml updates the original's element in place, and later
/// steps see the update through every list holding it).
type Node = Rc<RefCell<Value>>;

fn node(v: &Value) -> Node {
    Rc::new(RefCell::new(v.clone()))
}

/// The text kyaml compares for a scalar (`node.Value`); collections have none.
fn scalar_text(v: &Value) -> String {
    match v {
        v if nullish(v) => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Object(_) | Value::Array(_) => String::new(),
    }
}

fn null_or_empty_map(v: &Value) -> bool {
    nullish(v) || v.as_object().is_some_and(|m| m.is_empty())
}

/// The value of `key` for keyed matching: empty when missing, null or an empty collection.
fn key_value(elem: &Value, key: &str) -> String {
    match elem.get(key) {
        None => String::new(),
        Some(v) if nullish(v) => String::new(),
        Some(Value::Object(m)) if m.is_empty() => String::new(),
        Some(Value::Array(a)) if a.is_empty() => String::new(),
        Some(v) => scalar_text(v),
    }
}

/// kyaml's `FieldMatcher{Name, StringValue}` on a map element: the field when present and, for a
/// non-empty `value`, holding that text.
fn field_matches(elem: &Value, key: &str, value: &str) -> Result<bool, Failure> {
    if nullish(elem) {
        return Ok(false);
    }
    if key.is_empty() {
        if elem.is_object() || elem.is_array() {
            return Err(Failure::Unsupported(
                "strategic merge of a list mixing scalars and maps".into(),
            ));
        }
        return Ok(scalar_text(elem) == value);
    }
    let Value::Object(m) = elem else {
        return Err(Failure::Unsupported(
            "strategic merge of a list mixing scalars and maps".into(),
        ));
    };
    Ok(match m.get(key) {
        None => false,
        Some(_) if value.is_empty() => true,
        Some(v) => !v.is_object() && !v.is_array() && null_text(v) == value,
    })
}

/// A field's text as kyaml stores it: written nulls are `null` (JSON round trips spell them so).
fn null_text(v: &Value) -> String {
    if v.is_null() {
        "null".into()
    } else {
        scalar_text(v)
    }
}

/// kyaml's `ElementSetter`: removes null and empty-map elements, replaces the elements matching
/// `keys`/`values` with `element` (or removes them when there is none), appends `element` when
/// nothing matched.
fn element_setter(
    list: &mut Vec<Node>,
    element: Option<&Node>,
    keys: &[String],
    values: &[String],
) -> Result<(), Failure> {
    let keys: Vec<String> = if keys.is_empty() {
        vec![String::new()]
    } else {
        keys.to_vec()
    };
    let mapping_setter = !keys[0].is_empty() && values.first().is_some_and(|v| !v.is_empty());
    let mut out = Vec::with_capacity(list.len() + 1);
    let mut matched = false;
    for elem in list.iter() {
        let v = elem.borrow();
        if null_or_empty_map(&v) {
            continue;
        }
        if !v.is_object() && mapping_setter {
            out.push(elem.clone());
            continue;
        }
        // As in kyaml, keys beyond the given values reuse the last comparison.
        let mut found = false;
        for (j, key) in keys.iter().enumerate() {
            if let Some(value) = values.get(j) {
                found = field_matches(&v, key, value)?;
            }
            if !found {
                break;
            }
        }
        if !found {
            if !values.is_empty() {
                out.push(elem.clone());
            }
            continue;
        }
        matched = true;
        if let Some(e) = element {
            out.push(e.clone());
        }
    }
    *list = out;
    let Some(e) = element else {
        return Ok(());
    };
    if nullish(&e.borrow()) {
        return Ok(());
    }
    if !matched {
        list.push(e.clone());
    }
    Ok(())
}

/// kyaml's `ElementMatcher` (`MatchElementList`): the first element whose key fields hold
/// exactly these texts.
fn find_element(list: &[Node], keys: &[String], values: &[String]) -> Option<Node> {
    if keys.is_empty() || keys[0].is_empty() {
        let want = values.first().map(String::as_str).unwrap_or("");
        return list
            .iter()
            .find(|e| scalar_text(&e.borrow()) == want)
            .cloned();
    }
    list.iter()
        .find(|e| {
            let v = e.borrow();
            v.is_object()
                && keys.iter().zip(values).all(|(k, want)| {
                    v.get(k)
                        .is_some_and(|f| !f.is_object() && !f.is_array() && null_text(f) == *want)
                })
                && keys.len() == values.len()
        })
        .cloned()
}

/// kyaml's `validateKeys`: the keys some element has a value for (all of them when none has).
fn validate_keys(
    values_list: &[Vec<String>],
    values: &[String],
    keys: &[String],
) -> (Vec<String>, Vec<String>) {
    let valid: Vec<&String> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            values_list
                .iter()
                .any(|vs| vs.get(*i).is_some_and(|v| !v.is_empty()))
        })
        .map(|(_, k)| k)
        .collect();
    if valid.is_empty() {
        return (keys.to_vec(), values.to_vec());
    }
    let vk = keys.iter().filter(|k| valid.contains(k)).cloned().collect();
    let vv = values
        .iter()
        .enumerate()
        .filter(|(i, v)| !v.is_empty() || keys.get(*i).is_some_and(|k| valid.contains(&k)))
        .map(|(_, v)| v.clone())
        .collect();
    (vk, vv)
}

/// kyaml's `mergeValues`: key-value lists that agree where both have a value are unified.
fn merge_values(list: &mut [Vec<String>]) {
    for i in 0..list.len() {
        for j in 0..list.len() {
            let (a, b) = (&list[i], &list[j]);
            if a.len() != b.len() {
                continue;
            }
            let mut common = false;
            let mut res = Vec::with_capacity(a.len());
            let mut ok = true;
            for (x, y) in a.iter().zip(b) {
                if x == y {
                    common = true;
                    res.push(x.clone());
                } else if !x.is_empty() && !y.is_empty() {
                    ok = false;
                    break;
                } else if !x.is_empty() {
                    res.push(x.clone());
                } else {
                    res.push(y.clone());
                }
            }
            if ok && common {
                list[i] = res.clone();
                list[j] = res;
            }
        }
    }
}

/// A list-level directive: the first element holding `$patch`, when it holds nothing else.
/// Removed from the list it is read from.
fn take_list_directive(list: &mut Vec<Value>) -> Result<Option<String>, Failure> {
    let Some(pos) = list.iter().position(|e| e.get("$patch").is_some()) else {
        return Ok(None);
    };
    if list[pos].as_object().is_some_and(|m| m.len() > 1) {
        return Ok(None);
    }
    let d = list[pos].get("$patch").map(scalar_text).unwrap_or_default();
    if !matches!(d.as_str(), "delete" | "replace" | "merge") {
        return Err(Failure::Invalid(format!("unknown patch strategy '{d}'")));
    }
    // kyaml removes it with an element setter: every element with that directive goes, and so
    // do null and empty-map elements.
    list.retain(|e| {
        !null_or_empty_map(e) && e.get("$patch").map(scalar_text).as_deref() != Some(d.as_str())
    });
    Ok(Some(d))
}

/// A list the schema merges by key (`walkAssociativeSequence` and
/// `setAssociativeSequenceElements`).
fn walk_assoc(
    dest: Option<&Value>,
    origin: Option<&Value>,
    ty: TypeRef,
    info: &FieldInfo,
    same: bool,
) -> Result<Option<(Value, Picked)>, Failure> {
    let mut origin_list: Option<Vec<Value>> = match origin {
        Some(Value::Array(a)) => Some(a.clone()),
        Some(o) if nullish(o) => return Ok(None),
        _ => None,
    };
    let (dest_list, picked): (Vec<Value>, Picked) = match dest {
        _ if same => {
            // One list as both sources: its directive is read (and removed) like a patch's.
            let mut o = origin_list.clone().unwrap_or_default();
            if take_list_directive(&mut o)?.as_deref() == Some("delete") {
                return Ok(None);
            }
            (o, Picked::Origin)
        }
        None => {
            // Nothing to merge into: kyaml takes the patch's list as it is, directive elements
            // included, and walks it against itself.
            let Some(o) = origin_list.clone() else {
                return Ok(None);
            };
            (o, Picked::Origin)
        }
        Some(d) => {
            let dir = match origin_list.as_mut() {
                Some(o) => take_list_directive(o)?,
                None => None,
            };
            match dir.as_deref() {
                Some("delete") => return Ok(None),
                Some("replace") => (origin_list.clone().unwrap_or_default(), Picked::Origin),
                _ => (d.as_array().cloned().unwrap_or_default(), Picked::Dest),
            }
        }
    };
    // After `replace` or with nothing in the original, kyaml walks the patch's list against
    // itself: both sources are the same nodes.
    let same = same || picked == Picked::Origin;
    let mut dest_nodes: Vec<Node> = dest_list.iter().map(node).collect();
    let origin_nodes: Vec<Node> = if same {
        dest_nodes.clone()
    } else {
        origin_list
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(node)
            .collect()
    };
    let has_origin = same || origin_list.is_some();
    let keys: Vec<String> = info
        .merge_key
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();

    // The key values of every element, the patch's first (kustomize prepends), each once.
    let mut values_list: Vec<Vec<String>> = Vec::new();
    let primitive = keys.is_empty();
    let keys = if primitive { vec![String::new()] } else { keys };
    let by_patch_first: [Option<&[Node]>; 2] =
        [has_origin.then_some(&origin_nodes[..]), Some(&dest_nodes)];
    for src in by_patch_first.into_iter().flatten() {
        for e in src {
            let e = e.borrow();
            let vs: Vec<String> = if primitive {
                vec![scalar_text(&e)]
            } else {
                keys.iter()
                    .map(|k| {
                        if e.is_object() {
                            key_value(&e, k)
                        } else {
                            String::new()
                        }
                    })
                    .collect()
            };
            if !values_list.contains(&vs) {
                values_list.push(vs);
            }
        }
    }
    if keys.len() > 1 {
        merge_values(&mut values_list);
    }

    let mut items: Vec<Node> = Vec::new();
    let mut valid_keys: Vec<String> = Vec::new();
    let dest_is_origin = same;
    for values in values_list.clone() {
        let (vk, vv) = validate_keys(&values_list, &values, &keys);
        valid_keys = vk.clone();
        // The element of each source with these key values (`elementValueList`).
        let (lk, lv) = validate_keys(std::slice::from_ref(&vv), &vv, &vk);
        let d = find_element(&dest_nodes, &lk, &lv);
        let o = match has_origin {
            true if dest_is_origin => d.clone(),
            true => find_element(&origin_nodes, &lk, &lv),
            false => None,
        };
        let dv = d.as_ref().map(|n| n.borrow().clone());
        let ov = o.as_ref().map(|n| n.borrow().clone());
        let val = walk(dv.as_ref(), ov.as_ref(), ty, &FieldInfo::none(), same)?;
        // Reading an element's directive removes it from the patch's node, which (when both
        // sources are one list) is also the element a later step may keep as it is.
        if let Some(o) = &o {
            let _ = take_map_directive(&mut o.borrow_mut());
        }
        let val_node = match val {
            Some((v, Picked::Dest)) => d.inspect(|n| *n.borrow_mut() = v),
            Some((v, Picked::Origin)) => o.inspect(|n| *n.borrow_mut() = v),
            None => None,
        };
        let gone = val_node
            .as_ref()
            .is_none_or(|n| null_or_empty_map(&n.borrow()));
        if gone {
            element_setter(&mut dest_nodes, None, &vk, &vv)?;
            continue;
        }
        let Some(val_node) = val_node else { continue };
        for (i, key) in vk.iter().enumerate() {
            let missing = {
                let v = val_node.borrow();
                v.is_object() && v.get(key).is_none() || !v.is_object() && !key.is_empty()
            };
            if missing
                && let Some(text) = vv.get(i).filter(|t| !t.is_empty())
                && let Value::Object(m) = &mut *val_node.borrow_mut()
            {
                let restored =
                    resolve_plain(text).map_err(|e| Failure::Unsupported(e.to_string()))?;
                m.insert(key.clone(), restored);
            }
        }
        element_setter(&mut items, Some(&val_node), &vk, &vv)?;
    }
    if !values_list.is_empty() {
        // `appendListNode(itemsToBeAdded, dest, keys)`: the original's elements (merged in
        // place) are set into the new list.
        for elem in dest_nodes.clone() {
            if valid_keys.first().is_none_or(String::is_empty) {
                let text = scalar_text(&elem.borrow());
                element_setter(&mut items, Some(&elem), &[String::new()], &[text])?;
                continue;
            }
            let mut v = Vec::new();
            for key in &valid_keys {
                let field = {
                    let e = elem.borrow();
                    let Value::Object(m) = &*e else {
                        return Err(Failure::Unsupported(
                            "strategic merge of a list mixing scalars and maps".into(),
                        ));
                    };
                    m.get(key).map(null_text)
                };
                match field {
                    Some(t) => v.push(t),
                    None => items.push(elem.clone()),
                }
            }
            if valid_keys.len() > 1 {
                element_setter(&mut items, None, &valid_keys, &v)?;
            }
            element_setter(&mut items, Some(&elem), &valid_keys, &v)?;
        }
    }
    if items.is_empty() && values_list.is_empty() {
        return Ok(Some((Value::Array(dest_list), picked)));
    }
    let out: Vec<Value> = items.iter().map(|n| n.borrow().clone()).collect();
    Ok(Some((Value::Array(out), picked)))
}
