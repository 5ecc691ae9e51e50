//! The SQL Server errors the lab answers with, numbers and texts as SQL Server
//! sends them.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub number: i32,
    pub state: u8,
    pub class: u8,
    pub message: String,
}

impl SqlError {
    pub fn new(number: i32, class: u8, state: u8, message: impl Into<String>) -> SqlError {
        SqlError { number, state, class, message: message.into() }
    }

    pub fn syntax_near(token: &str) -> SqlError {
        SqlError::new(102, 15, 1, format!("Incorrect syntax near '{token}'."))
    }

    pub fn syntax_near_keyword(keyword: &str) -> SqlError {
        SqlError::new(156, 15, 1, format!("Incorrect syntax near the keyword '{keyword}'."))
    }

    pub fn invalid_object(name: &str) -> SqlError {
        SqlError::new(208, 16, 1, format!("Invalid object name '{name}'."))
    }

    pub fn invalid_column(name: &str) -> SqlError {
        SqlError::new(207, 16, 1, format!("Invalid column name '{name}'."))
    }

    pub fn ambiguous_column(name: &str) -> SqlError {
        SqlError::new(209, 16, 1, format!("Ambiguous column name '{name}'."))
    }

    pub fn unknown_function(name: &str) -> SqlError {
        SqlError::new(195, 15, 10, format!("'{name}' is not a recognized built-in function name."))
    }

    pub fn unknown_procedure(name: &str) -> SqlError {
        SqlError::new(2812, 16, 62, format!("Could not find stored procedure '{name}'."))
    }

    pub fn undeclared_variable(name: &str) -> SqlError {
        SqlError::new(137, 15, 2, format!("Must declare the scalar variable \"{name}\"."))
    }

    pub fn unknown_database(name: &str) -> SqlError {
        SqlError::new(
            911,
            16,
            1,
            format!("Database '{name}' does not exist. Make sure that the name is entered correctly."),
        )
    }

    /// Both errors SQL Server raises when a DMV needs VIEW SERVER STATE.
    pub fn view_server_state_denied() -> [SqlError; 2] {
        [
            SqlError::new(300, 14, 1, "VIEW SERVER STATE permission was denied on object 'server', database 'master'."),
            SqlError::new(297, 16, 1, "The user does not have permission to perform this action."),
        ]
    }

    /// What a login without write permissions gets for DDL or DML.
    pub fn permission_denied(statement: &str, database: &str) -> SqlError {
        SqlError::new(262, 14, 1, format!("{statement} permission denied in database '{database}'."))
    }

    pub fn execute_denied(object: &str, database: &str, schema: &str) -> SqlError {
        SqlError::new(
            229,
            14,
            5,
            format!(
                "The EXECUTE permission was denied on the object '{object}', database '{database}', schema '{schema}'."
            ),
        )
    }

    pub fn login_failed(user: &str) -> SqlError {
        SqlError::new(18456, 14, 1, format!("Login failed for user '{user}'."))
    }

    pub fn conversion(from: &str, to: &str) -> SqlError {
        SqlError::new(245, 16, 1, format!("Conversion failed when converting the {from} value to data type {to}."))
    }
}
