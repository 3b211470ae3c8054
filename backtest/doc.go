// Package backtest owns `healthscore backtest`: does a model's score predict
// churn? It splits an event log at an instant T, scores every customer as
// of T from its events strictly before T only, labels churn from a file or
// from inactivity in (T, T+horizon], and measures the model and an RFM
// rank-sum baseline on the same customers: AUC, ROC, precision and recall
// of the red band, top-decile lift and churn rate per band. It writes a
// table, JSON and an SVG chart.
//
// The metric functions (AUC, ROC, Lift, TopDecileLift, Ranks) are exported
// for package fit. Their convention: a higher score is healthier.
//
// Non-goals: learning weights (package fit), reading CSV (package convert).
package backtest
