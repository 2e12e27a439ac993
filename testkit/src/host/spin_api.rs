//! `fermyon:spin/variables@2.0.0` and `fermyon:spin/key-value@2.0.0` for the guest.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use wasmtime::component::{Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "fermyon:spin/testkit-host",
        imports: { default: trappable },
        with: {
            "fermyon:spin/key-value.store": super::OpenStore,
        },
    });
}

pub(crate) use bindings::fermyon::spin::{key_value, variables};

/// The `store` resource: an opened label.
pub struct OpenStore {
    label: String,
}

type Stores = HashMap<String, BTreeMap<String, Vec<u8>>>;

/// The host's in-memory key-value data, shared by every instance (and the test).
#[derive(Clone, Default)]
pub struct KvHandle {
    stores: Arc<Mutex<Stores>>,
}

impl KvHandle {
    /// The value of `key` in store `store` (e.g. "default").
    pub fn get(&self, store: &str, key: &str) -> Option<Vec<u8>> {
        self.stores.lock().unwrap().get(store)?.get(key).cloned()
    }

    /// Sets `key` in `store`, creating the store if needed.
    pub fn set(&self, store: &str, key: &str, value: impl Into<Vec<u8>>) {
        self.stores
            .lock()
            .unwrap()
            .entry(store.to_string())
            .or_default()
            .insert(key.to_string(), value.into());
    }

    /// Deletes `key` from `store` (no error if absent).
    pub fn delete(&self, store: &str, key: &str) {
        if let Some(s) = self.stores.lock().unwrap().get_mut(store) {
            s.remove(key);
        }
    }

    /// The keys of `store`, sorted.
    pub fn keys(&self, store: &str) -> Vec<String> {
        self.stores
            .lock()
            .unwrap()
            .get(store)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Per-instance Spin state (`Store<T>` data holds one).
pub(crate) struct SpinState {
    pub variables: Arc<HashMap<String, String>>,
    pub kv: KvHandle,
    pub kv_labels: Arc<Vec<String>>,
}

/// What the generated traits are implemented on.
pub(crate) struct SpinView<'a> {
    pub state: &'a mut SpinState,
    pub table: &'a mut ResourceTable,
}

pub(crate) struct HasSpin;

impl wasmtime::component::HasData for HasSpin {
    type Data<'a> = SpinView<'a>;
}

impl variables::Host for SpinView<'_> {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        if let Err(e) = super::manifest::validate_key(&name) {
            return Ok(Err(variables::Error::InvalidName(format!(
                "invalid variable name: {e}"
            ))));
        }
        Ok(match self.state.variables.get(&name) {
            Some(v) => Ok(v.clone()),
            None => Err(variables::Error::Undefined(format!(
                "undefined variable: no variable for {name:?}"
            ))),
        })
    }
}

type KvResult<T> = wasmtime::Result<Result<T, key_value::Error>>;

impl SpinView<'_> {
    fn label(&self, store: &Resource<OpenStore>) -> wasmtime::Result<String> {
        Ok(self.table.get(store)?.label.clone())
    }
}

impl key_value::Host for SpinView<'_> {}

impl key_value::HostStore for SpinView<'_> {
    fn open(&mut self, label: String) -> KvResult<Resource<OpenStore>> {
        if !self.state.kv_labels.contains(&label) {
            return Ok(Err(key_value::Error::AccessDenied));
        }
        Ok(Ok(self.table.push(OpenStore { label })?))
    }

    fn get(&mut self, store: Resource<OpenStore>, key: String) -> KvResult<Option<Vec<u8>>> {
        let label = self.label(&store)?;
        Ok(Ok(self.state.kv.get(&label, &key)))
    }

    fn set(&mut self, store: Resource<OpenStore>, key: String, value: Vec<u8>) -> KvResult<()> {
        let label = self.label(&store)?;
        self.state.kv.set(&label, &key, value);
        Ok(Ok(()))
    }

    fn delete(&mut self, store: Resource<OpenStore>, key: String) -> KvResult<()> {
        let label = self.label(&store)?;
        self.state.kv.delete(&label, &key);
        Ok(Ok(()))
    }

    fn exists(&mut self, store: Resource<OpenStore>, key: String) -> KvResult<bool> {
        let label = self.label(&store)?;
        Ok(Ok(self.state.kv.get(&label, &key).is_some()))
    }

    fn get_keys(&mut self, store: Resource<OpenStore>) -> KvResult<Vec<String>> {
        let label = self.label(&store)?;
        Ok(Ok(self.state.kv.keys(&label)))
    }

    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> SpinView<'_>,
) -> wasmtime::Result<()> {
    variables::add_to_linker::<T, HasSpin>(linker, get)?;
    key_value::add_to_linker::<T, HasSpin>(linker, get)?;
    Ok(())
}
