//! The GraphQL documents the connector sends. Bulk queries select connections without sizes
//! (the bulk operation pages them itself); the incremental ones page with `first`/`after`.

pub const SHOP: &str = "{ shop { ianaTimezone currencyCode } }";

const CUSTOMER: &str =
    "customer { id email firstName lastName displayName emailMarketingConsent { marketingState } }";
const MONEY: &str = "shopMoney { amount currencyCode }";

/// Line items listed per order in an incremental page; an order with more is refetched alone.
pub const LINE_ITEMS_PER_ORDER: u32 = 100;

fn line_item_fields() -> String {
    format!(
        "id name title sku quantity currentQuantity originalUnitPriceSet {{ {MONEY} }} \
         discountedTotalSet {{ {MONEY} }} variant {{ id }} product {{ id productType }}"
    )
}

fn refund_line_item_fields() -> String {
    format!("id lineItem {{ id }} quantity subtotalSet {{ {MONEY} }}")
}

/// All orders, for `bulkOperationRunQuery`.
pub fn bulk_orders() -> String {
    format!(
        "{{ orders {{ edges {{ node {{ id name createdAt updatedAt processedAt cancelledAt \
         {CUSTOMER} refunds {{ id refundLineItems {{ edges {{ node {{ {} }} }} }} }} \
         lineItems {{ edges {{ node {{ {} }} }} }} }} }} }} }}",
        refund_line_item_fields(),
        line_item_fields()
    )
}

/// One page of orders updated since `$q`'s watermark, oldest change first.
pub fn orders_page() -> String {
    format!(
        "query OrdersSince($q: String!, $first: Int!, $after: String) {{ \
         orders(first: $first, after: $after, query: $q, sortKey: UPDATED_AT) {{ \
         pageInfo {{ hasNextPage endCursor }} \
         nodes {{ id name createdAt updatedAt processedAt cancelledAt {CUSTOMER} \
         refunds(first: 50) {{ id refundLineItems(first: 250) {{ nodes {{ {} }} }} }} \
         lineItems(first: {LINE_ITEMS_PER_ORDER}) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {} }} }} }} }} }}",
        refund_line_item_fields(),
        line_item_fields()
    )
}

/// The rest of one order's line items.
pub fn order_line_items() -> String {
    format!(
        "query OrderLines($id: ID!, $after: String) {{ order(id: $id) {{ \
         lineItems(first: 250, after: $after) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {} }} }} }} }}",
        line_item_fields()
    )
}

const PRODUCT: &str = "id title productType updatedAt";

/// All products, for `bulkOperationRunQuery`.
pub fn bulk_products() -> String {
    format!(
        "{{ products {{ edges {{ node {{ {PRODUCT} \
         collections {{ edges {{ node {{ id title }} }} }} \
         variants {{ edges {{ node {{ id sku price inventoryQuantity }} }} }} }} }} }} }}"
    )
}

/// One page of products updated since `$q`'s watermark.
pub fn products_page() -> String {
    format!(
        "query ProductsSince($q: String!, $first: Int!, $after: String) {{ \
         products(first: $first, after: $after, query: $q, sortKey: UPDATED_AT) {{ \
         pageInfo {{ hasNextPage endCursor }} \
         nodes {{ {PRODUCT} collections(first: 5) {{ nodes {{ id title }} }} \
         variants(first: 100) {{ nodes {{ id sku price inventoryQuantity }} }} }} }} }}"
    )
}

pub const BULK_RUN: &str = "mutation RunBulk($query: String!) { \
    bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message } } }";

pub const BULK_CURRENT: &str =
    "query CurrentBulk { currentBulkOperation(type: QUERY) { id status } }";

pub const BULK_POLL: &str = "query BulkStatus($id: ID!) { node(id: $id) { ... on BulkOperation { \
    id status errorCode objectCount url partialDataUrl createdAt completedAt } } }";

/// The customers' segment tags and profile metafields, for the push.
pub const CUSTOMERS_STATE: &str = "query CustomerState($ids: [ID!]!, $ns: String!) { \
    nodes(ids: $ids) { ... on Customer { id tags metafields(namespace: $ns, first: 10) { nodes { key value } } } } }";
