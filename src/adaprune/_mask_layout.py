"""Where LazyMaskSGD keeps its scalars in one float64 array (`ctl`), which the compiled kernels
(adaprune._mask_kernels) read and write: its step t, H, C, sum(w) and #{m > 0}, the settings, the
armed step and the last batch's terms."""

T, H, C, SUM_W, N_POS, ALPHA, FLOW, LR, MU, WD, KEEP, LAMBDA_SCALE, ADAPTIVE, N, SEL_EPS = range(15)
ARMED, SCALE, G_ARMED, N_ARMED, G_BATCH, L_CLS, L_SEL, COMP, LAM, R = range(15, 25)
CTL_SIZE = 25
