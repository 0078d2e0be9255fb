//! Prompts over real-world schema quirks (tests/fixtures/quirks/quirks.sql): names are written
//! the way a query must write them (quoted when they are not plain words), views are tables
//! like any other, and a schema too wide for the prompt budget shows its keys and the columns
//! relevant to the question.

use std::path::Path;

use rusqlite::Connection;
use sqlora_sql::schema::Schema;
use sqlora_sqlgen::{prefix_tokens, PromptBuilder};

fn quirks_schema() -> Schema {
    let sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/quirks/quirks.sql"),
    )
    .unwrap();
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&sql).unwrap();
    Schema::from_connection(&conn, 3).unwrap()
}

#[test]
fn odd_names_render_as_sql_writes_them() {
    let pb = PromptBuilder::builtin();
    let m = pb
        .messages("Who lives in München?", &quirks_schema())
        .unwrap();
    let user = &m[1].content;
    for line in [
        "Customers(CustomerID PK, \"first name\" e.g. 'Zoë'/'Ana', \"Last\"\"Name\" e.g. 'O''Brien'/'Nuñez', \"Città\" e.g. 'München'/'東京')\n",
        "Orders(OrderID PK, CustomerID -> Customers.CustomerID, Total)\n",
        "\"Order Items\"(order_id PK, line PK, sku e.g. 'A-1'/'B-2', qty)\n",
        "event_log(ts e.g. '2024-01-01'/'2024-01-02', message e.g. 'started ✓'/'disk full', level)\n",
        "\"Big Orders\"(OrderID, CustomerID, Total)\n",
    ] {
        assert!(user.contains(line), "no {line:?} in\n{user}");
    }
    assert!(user.ends_with("Question: Who lives in München?"));
    // The DDL variant quotes the same way.
    let ddl = PromptBuilder::from_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts/variants/ddl_samples"),
    )
    .unwrap()
    .messages("q", &quirks_schema())
    .unwrap();
    assert!(
        ddl[1].content.contains("CREATE TABLE \"Order Items\" (")
            && ddl[1].content.contains("  \"Last\"\"Name\" TEXT,")
            && ddl[1]
                .content
                .contains("  CustomerID INTEGER REFERENCES Customers(CustomerID),"),
        "{}",
        ddl[1].content
    );
}

#[test]
fn a_wide_schema_is_cut_to_the_budget_keeping_keys_and_relevant_columns() {
    let Some(m) = sqlora_model::testing::real_model() else {
        return;
    };
    let schema = quirks_schema();
    let q = "What is the average humidity for each station?";
    let whole = PromptBuilder::builtin();
    let full = whole.prompt(m, &schema, q, true).unwrap();
    let full_len = m.tokenizer.encode(&full, false).unwrap().len();
    // The default budget (3/4 of the context) holds the whole schema: nothing changes.
    assert!(whole.schema_fits(m, &schema).unwrap());
    assert!(!prefix_tokens(m, &whole, &schema).unwrap().is_empty());
    assert_eq!(
        full,
        sqlora_sqlgen::render_chat(m, &whole.messages(q, &schema).unwrap()).unwrap() + "SELECT"
    );
    assert!(full.contains("aux_116"));

    let budget = full_len - 500;
    let pb = PromptBuilder::builtin().with_max_prompt_tokens(Some(budget));
    assert!(!pb.schema_fits(m, &schema).unwrap());
    // Question-dependent prompts share no schema prefix: nothing to cache.
    assert!(prefix_tokens(m, &pb, &schema).unwrap().is_empty());
    let cut = pb.prompt(m, &schema, q, true).unwrap();
    let n = m.tokenizer.encode(&cut, false).unwrap().len();
    assert!(n <= budget, "{n} tokens > {budget}");
    // ...but not much less: as many columns as fit.
    assert!(n + 60 > budget, "{n} tokens, budget {budget}");
    let line = cut
        .lines()
        .find(|l| l.starts_with("wide_readings("))
        .unwrap();
    assert!(
        line.starts_with("wide_readings(reading_id PK, station_name e.g. 'Nord'/'Süd', humidity"),
        "{line}"
    );
    assert!(!line.contains("aux_116"), "{line}");
    // Every other table keeps its keys and (being small and named by nothing) is cut last.
    for key in [
        "Customers(CustomerID PK",
        "Orders(OrderID PK, CustomerID -> Customers.CustomerID",
        "\"Order Items\"(order_id PK, line PK",
        "event_log(ts",
        "\"Big Orders\"(OrderID",
    ] {
        assert!(cut.contains(key), "no {key} in\n{cut}");
    }
    // Another question, other columns.
    let wind = pb
        .prompt(
            m,
            &schema,
            "Which station had the highest wind speed?",
            true,
        )
        .unwrap();
    let line = wind
        .lines()
        .find(|l| l.starts_with("wide_readings("))
        .unwrap();
    assert!(line.contains("wind_speed"), "{line}");
    // Far too small a budget still gives a prompt: every key column, nothing else of the
    // wide table.
    let tiny = PromptBuilder::builtin().with_max_prompt_tokens(Some(10));
    let p = tiny.prompt(m, &schema, q, true).unwrap();
    let line = p.lines().find(|l| l.starts_with("wide_readings(")).unwrap();
    assert_eq!(line, "wide_readings(reading_id PK)");
}
