"""The linear reference for the binary task on data/wdbc.csv: logistic
regression (scikit-learn, inputs standardised) on the same 20 inputs that
README's wdbc run uses, scored by ROC AUC over 5 stratified folds.

    python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install scikit-learn
    /tmp/skvenv/bin/python scripts/wdbc_linear_reference.py
"""
import csv, numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.pipeline import make_pipeline
from sklearn.model_selection import cross_val_score, StratifiedKFold
rows=list(csv.DictReader(open('data/wdbc.csv')))
feat=["radius","texture","perimeter","area","smoothness","compactness","concavity","concave_points","symmetry","fractal_dimension"]
cols=[f+"_mean" for f in feat]+[f+"_se" for f in feat]
X=np.array([[float(r[c]) for c in cols] for r in rows]); y=np.array([r["diagnosis"]=="M" for r in rows])
m=make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
s=cross_val_score(m,X,y,cv=StratifiedKFold(5,shuffle=True,random_state=0),scoring="roc_auc")
print("logistic regression, 20 inputs (_mean, _se), 5-fold AUC: mean %.4f, folds %s"%(s.mean(), np.round(s,4)))
