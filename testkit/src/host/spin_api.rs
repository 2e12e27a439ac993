//! `fermyon:spin/variables@2.0.0`, `fermyon:spin/key-value@2.0.0` and
//! `wasi:keyvalue@0.2.0-draft2` (`store`, `atomics`) for the guest, over the app's labelled
//! stores ([`super::kv`]), as Spin 3.6.3's key-value factor serves both interfaces from the same
//! stores: a label outside the component's `key_value_stores` is `access-denied`, opening one
//! connects to its backend, a failed swap hands back a fresh `cas` that has read the current
//! value (Spin's `KeyValueDispatch`).
//!
//! Difference from Spin: `wasi:keyvalue/batch` and the legacy `fermyon:spin/key-value@1.0.0`
//! are not provided (the component imports neither).

use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};

use super::kv::{Backend, Cas, Stores, SwapFailure};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "fermyon:spin/testkit-host",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": super::OpenStore,
            "wasi:keyvalue/store.bucket": super::OpenStore,
            "wasi:keyvalue/atomics.cas": super::CasHandle,
        },
    });
}

pub(crate) use bindings::fermyon::spin::{key_value, variables};
use bindings::wasi::keyvalue::{atomics as wasi_atomics, store as wasi_store};

/// The `store` / `bucket` resource: an opened label.
pub struct OpenStore {
    label: String,
    backend: Arc<Backend>,
}

/// A `wasi:keyvalue/atomics.cas`, with the rep of the bucket it was made from (Spin re-opens a
/// compare-and-swap on that bucket when a swap fails).
pub struct CasHandle {
    cas: Cas,
    bucket_rep: u32,
}

/// Per-instance Spin state (`Store<T>` data holds one).
pub(crate) struct SpinState {
    /// Resolves each lookup through the provider chain, as Spin does.
    pub variables: Arc<crate::spin_rules::variables::Resolver>,
    pub stores: Arc<Stores>,
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
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        if let Err(e) = crate::spin_rules::manifest::validate_key(&name) {
            return Ok(Err(variables::Error::InvalidName(format!(
                "invalid variable name: {e}"
            ))));
        }
        Ok(match self.state.variables.component_variable(&name) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(variables::Error::Provider(e)),
            None => Err(variables::Error::Undefined(format!(
                "undefined variable: no variable for {name:?}"
            ))),
        })
    }
}

type KvResult<T> = wasmtime::Result<Result<T, key_value::Error>>;
type WasiKv<T> = wasmtime::Result<Result<T, wasi_store::Error>>;

/// Why opening a label failed, before it is said in one interface's error type.
enum OpenError {
    AccessDenied,
    NoSuchStore,
    Other(String),
}

impl SpinView<'_> {
    /// Spin's `open`: allowed label, defined store, then the backend's own open.
    async fn open_label(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<OpenStore, OpenError>> {
        if !self.state.kv_labels.contains(&label) {
            return Ok(Err(OpenError::AccessDenied));
        }
        let Some(backend) = self.state.stores.backend(&label) else {
            return Ok(Err(OpenError::NoSuchStore));
        };
        if let Err(e) = backend.open().await {
            return Ok(Err(OpenError::Other(e)));
        }
        Ok(Ok(OpenStore { label, backend }))
    }

    fn store(&self, store: &Resource<OpenStore>) -> wasmtime::Result<(String, Arc<Backend>)> {
        let s = self.table.get(store)?;
        Ok((s.label.clone(), s.backend.clone()))
    }

    fn read(&self) {
        self.state.stores.count(1, 0);
    }

    fn write(&self) {
        self.state.stores.count(0, 1);
    }
}

impl key_value::Host for SpinView<'_> {}

impl key_value::HostStore for SpinView<'_> {
    async fn open(&mut self, label: String) -> KvResult<Resource<OpenStore>> {
        Ok(match self.open_label(label).await? {
            Ok(store) => Ok(self.table.push(store)?),
            Err(OpenError::AccessDenied) => Err(key_value::Error::AccessDenied),
            Err(OpenError::NoSuchStore) => Err(key_value::Error::NoSuchStore),
            Err(OpenError::Other(e)) => Err(key_value::Error::Other(e)),
        })
    }

    async fn get(&mut self, store: Resource<OpenStore>, key: String) -> KvResult<Option<Vec<u8>>> {
        let (label, backend) = self.store(&store)?;
        self.read();
        Ok(backend
            .get(&label, &key)
            .await
            .map_err(key_value::Error::Other))
    }

    async fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> KvResult<()> {
        let (label, backend) = self.store(&store)?;
        self.write();
        Ok(backend
            .set(&label, &key, &value)
            .await
            .map_err(key_value::Error::Other))
    }

    async fn delete(&mut self, store: Resource<OpenStore>, key: String) -> KvResult<()> {
        let (label, backend) = self.store(&store)?;
        self.write();
        Ok(backend
            .delete(&label, &key)
            .await
            .map_err(key_value::Error::Other))
    }

    async fn exists(&mut self, store: Resource<OpenStore>, key: String) -> KvResult<bool> {
        let (label, backend) = self.store(&store)?;
        self.read();
        Ok(backend
            .exists(&label, &key)
            .await
            .map_err(key_value::Error::Other))
    }

    async fn get_keys(&mut self, store: Resource<OpenStore>) -> KvResult<Vec<String>> {
        let (label, backend) = self.store(&store)?;
        self.read();
        Ok(backend.keys(&label).await.map_err(key_value::Error::Other))
    }

    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl wasi_store::Host for SpinView<'_> {
    async fn open(&mut self, identifier: String) -> WasiKv<Resource<OpenStore>> {
        Ok(match self.open_label(identifier).await? {
            Ok(store) => Ok(self.table.push(store)?),
            Err(OpenError::AccessDenied) => Err(wasi_store::Error::AccessDenied),
            Err(OpenError::NoSuchStore) => Err(wasi_store::Error::NoSuchStore),
            Err(OpenError::Other(e)) => Err(wasi_store::Error::Other(e)),
        })
    }
}

impl wasi_store::HostBucket for SpinView<'_> {
    async fn get(&mut self, bucket: Resource<OpenStore>, key: String) -> WasiKv<Option<Vec<u8>>> {
        let (label, backend) = self.store(&bucket)?;
        self.read();
        Ok(backend
            .get(&label, &key)
            .await
            .map_err(wasi_store::Error::Other))
    }

    async fn set(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> WasiKv<()> {
        let (label, backend) = self.store(&bucket)?;
        self.write();
        Ok(backend
            .set(&label, &key, &value)
            .await
            .map_err(wasi_store::Error::Other))
    }

    async fn delete(&mut self, bucket: Resource<OpenStore>, key: String) -> WasiKv<()> {
        let (label, backend) = self.store(&bucket)?;
        self.write();
        Ok(backend
            .delete(&label, &key)
            .await
            .map_err(wasi_store::Error::Other))
    }

    async fn exists(&mut self, bucket: Resource<OpenStore>, key: String) -> WasiKv<bool> {
        let (label, backend) = self.store(&bucket)?;
        self.read();
        Ok(backend
            .exists(&label, &key)
            .await
            .map_err(wasi_store::Error::Other))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<OpenStore>,
        cursor: Option<String>,
    ) -> WasiKv<wasi_store::KeyResponse> {
        if cursor.is_some() {
            return Ok(Err(wasi_store::Error::Other(
                "list_keys: cursor not supported".to_owned(),
            )));
        }
        let (label, backend) = self.store(&bucket)?;
        self.read();
        Ok(backend
            .keys(&label)
            .await
            .map(|keys| wasi_store::KeyResponse { keys, cursor: None })
            .map_err(wasi_store::Error::Other))
    }

    async fn drop(&mut self, bucket: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl wasi_atomics::Host for SpinView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> WasiKv<i64> {
        let (label, backend) = self.store(&bucket)?;
        self.write();
        Ok(backend
            .increment(&label, &key, delta)
            .await
            .map_err(wasmtime::Error::from_anyhow)?
            .map_err(wasi_store::Error::Other))
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_atomics::CasError>> {
        self.write();
        let handle = self.table.delete(cas)?;
        match handle.cas.swap(value).await {
            Ok(()) => Ok(Ok(())),
            Err(SwapFailure::Other(e)) => Ok(Err(wasi_atomics::CasError::StoreError(
                wasi_store::Error::Other(e),
            ))),
            // Spin: a new compare-and-swap on the same bucket and key, which reads the value
            // now there, goes back with the failure.
            Err(SwapFailure::CasFailed) => {
                let bucket: Resource<OpenStore> = Resource::new_borrow(handle.bucket_rep);
                if self.table.get(&bucket).is_err() {
                    return Ok(Err(wasi_atomics::CasError::StoreError(
                        wasi_store::Error::NoSuchStore,
                    )));
                }
                let mut fresh = match handle
                    .cas
                    .backend()
                    .new_cas(handle.cas.label(), handle.cas.key())
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        return Ok(Err(wasi_atomics::CasError::StoreError(
                            wasi_store::Error::Other(e),
                        )))
                    }
                };
                self.read();
                if let Err(e) = fresh.current().await {
                    return Ok(Err(wasi_atomics::CasError::StoreError(
                        wasi_store::Error::Other(e),
                    )));
                }
                let fresh = self.table.push(CasHandle {
                    cas: fresh,
                    bucket_rep: handle.bucket_rep,
                })?;
                Ok(Err(wasi_atomics::CasError::CasFailed(fresh)))
            }
        }
    }
}

impl wasi_atomics::HostCas for SpinView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<OpenStore>,
        key: String,
    ) -> WasiKv<Resource<CasHandle>> {
        let bucket_rep = bucket.rep();
        let (label, backend) = self.store(&bucket)?;
        Ok(match backend.new_cas(&label, &key).await {
            Ok(cas) => Ok(self.table.push(CasHandle { cas, bucket_rep })?),
            Err(e) => Err(wasi_store::Error::Other(e)),
        })
    }

    async fn current(&mut self, cas: Resource<CasHandle>) -> WasiKv<Option<Vec<u8>>> {
        self.read();
        let handle = self.table.get_mut(&cas)?;
        Ok(handle.cas.current().await.map_err(wasi_store::Error::Other))
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> SpinView<'_>,
) -> wasmtime::Result<()> {
    variables::add_to_linker::<T, HasSpin>(linker, get)?;
    key_value::add_to_linker::<T, HasSpin>(linker, get)?;
    wasi_store::add_to_linker::<T, HasSpin>(linker, get)?;
    wasi_atomics::add_to_linker::<T, HasSpin>(linker, get)?;
    Ok(())
}
