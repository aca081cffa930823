//! The reads of a [`StateStore`](super::StateStore) that wraps another and changes only how
//! writes reach it (a bound on flush time, a watch on changes, a test's held flush).

/// Inside `impl StateStore for ...`: `run`, `runs`, `newest_run_id`, `nodes`, `output`, `get`
/// and `scan`, each passed on to the store in the field named `$inner`.
macro_rules! delegate_reads {
    ($inner:ident) => {
        fn run(
            &self,
            run_id: &str,
        ) -> Result<Option<$crate::store::RunRecord>, $crate::store::StoreError> {
            self.$inner.run(run_id)
        }
        fn runs(&self) -> Result<Vec<$crate::store::RunRecord>, $crate::store::StoreError> {
            self.$inner.runs()
        }
        fn newest_run_id(&self) -> Result<Option<String>, $crate::store::StoreError> {
            self.$inner.newest_run_id()
        }
        fn nodes(
            &self,
            run_id: &str,
        ) -> Result<Vec<$crate::store::NodeRecord>, $crate::store::StoreError> {
            self.$inner.nodes(run_id)
        }
        fn output(
            &self,
            run_id: &str,
            node_id: &str,
        ) -> Result<Option<Vec<u8>>, $crate::store::StoreError> {
            self.$inner.output(run_id, node_id)
        }
        fn get(
            &self,
            namespace: &str,
            key: &str,
        ) -> Result<Option<Vec<u8>>, $crate::store::StoreError> {
            self.$inner.get(namespace, key)
        }
        fn scan(
            &self,
            namespace: &str,
            prefix: &str,
        ) -> Result<Vec<(String, Vec<u8>)>, $crate::store::StoreError> {
            self.$inner.scan(namespace, prefix)
        }
    };
}

pub(crate) use delegate_reads;
