mod tds;
