// Where the app finds identity's GraphQL endpoint. Change it for your deployment, e.g.
// "https://id.example.com/graphql", and add that origin to connect-src in index.html.
//
// For the cookie to travel, this must be the same *site* as the page (see README.md): with
// the page on http://localhost:5173, use http://localhost:8000, not http://127.0.0.1:8000.
export const API_URL = "http://localhost:8000/graphql";
