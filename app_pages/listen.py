import streamlit as st
import torch

from app_pages import record, ui
from tl_core import audio, backbones, i18n, userclips
from tl_core.experiments import audio as exp
from tl_core.experiments import audio_shift as shift
from tl_core.i18n import N_, tr
from tl_core.plots import audio as figures

C, S = exp.AudioConfig, st.session_state
BUILT_IN, OWN = N_("built-in spoken words"), N_("your own clips")   # the radio's values (a test sets one), in words
MAP_BY = (N_("word"), N_("voice"))
MAP_TITLE = {"en": N_("Every English clip's 256-d embedding, projected to 2-D (PCA), coloured by {by}"),
             "es": N_("Every Spanish clip's 256-d embedding, projected to 2-D (PCA), coloured by {by}")}

link = ui.page(tr("Machine listening"), "listen_",
               tr("Transfer works for sound too. A **speech encoder pretrained on real speech** (GE2E: a 3-layer LSTM "
               "trained on LibriSpeech and VoxCeleb to tell *speakers* apart) learns new words or voices from a few "
               "clips each. Compare it **frozen** (a new head on its 256-number embedding), with its **last layer** "
               "or **every layer** fine-tuned, and the **same network from scratch**. Validation voices (or words) "
               "are never heard in training."), settings=tr("Listening settings"))
with st.sidebar:
    # the options' words looked up now (format_func may be called outside this run, where the language is unset)
    source = st.radio(tr("Clips"), [BUILT_IN, OWN], format_func={o: tr(o) for o in (BUILT_IN, OWN)}.get,
                      key="listen_source", horizontal=True)
    picked = ui.widgets(C, ("task", "language", "conditions", "shots", "seeds", "epochs"), "listen_")
    ok, note = backbones.weights_status(audio.ENCODER)
    (st.caption if ok else st.error)(tr("Encoder: {note}", note=note) if ok else note)
picked.update(ui.more_settings(C, ("val_voices", "val_words", "lr", "encoder_lr"), "listen_"))
link.report()
cfg = C(**picked)
own = record.clips() if source == OWN else None
if source == OWN and own is None:
    st.stop()

st.subheader(tr("Listen"))
if own is None:
    ds = audio.spoken_words()
    left, mid, right = st.columns([1, 2, 3])
    word = left.selectbox(tr("Word"), audio.vocabulary(cfg.language), key="listen_word")
    voice = mid.selectbox(tr("Voice (espeak-ng accent + variant)"), audio.voices_of(cfg.language),
                          key="listen_voice")
    row = next(i for i in range(len(ds)) if ds.words[i] == word and ds.voices[i] == voice)
    wave, feats, title = ds.waves[row], ds.feats[row], tr("“{word}” said by {voice}", word=word, voice=voice)
else:
    row = st.selectbox(tr("Clip"), range(len(own)),
                       format_func=lambda i: f"{own.classes[own.labels[i]]} · {own.names[i]}",
                       key="listen_own_clip") if len(own) else None
    if row is None:
        st.info(tr("Record a clip to hear it back and see its spectrogram."))
        st.stop()
    wave, title = own.waves[row], f"“{own.classes[own.labels[row]]}”"
    feats = torch.from_numpy(audio.features(wave))
    right = st
right.audio(userclips.to_wav(wave), format="audio/wav")
ui.chart(figures.spectrogram(audio.log_mel(feats).numpy(), tr("Log-mel spectrogram of {clip}: what the encoder "
                                                              "hears (40 mel bands, 10 ms a step)", clip=title)),
         "listen_spec")

st.subheader(tr("Pretrained vs scratch, on a few clips"))
problems = own.ready().problems() if own is not None else []
for p in problems:
    st.error(p)
kind = "audio" if own is None else "audio-own"
inputs = {"clips": (own.fingerprint, own.to_bytes)} if own is not None else None
key = cfg if own is None else (own.fingerprint, cfg)
result = ui.run_button("listen", tr("Train"), kind, cfg, results=S.setdefault("listen_results", {}), key=key,
                       inputs=inputs, button_key="listen_train", disabled=bool(problems),
                       start=N_("Reading the clips and the encoder…"))
if result is None:
    st.info(tr("Press **Train** to compare the conditions. The frozen encoder is the quickest (its embeddings are "
               "computed once); scratch is the slowest (its LSTM steps through every 10 ms of every clip)."))
else:
    ui.verdict(result.verdict())
    out = result.to_json()
    d = out["data"]
    st.caption(tr("{clips} clips, {classes} classes · training voices: {train}, validation voices: {val} · "
                  "{device} · {s} s (frozen layers' outputs: {cached} s, once for every seed)", clips=d["clips"],
                  classes=len(out["classes"]), train=len(d["voices_train"]), val=len(d["voices_val"]),
                  device=result.device, s=f"{result.seconds:.0f}", cached=i18n.number(result.cached_seconds, 1)))
    ui.chart(figures.accuracy_bars(out), "listen_bars")
    record.download_model(result)
    ui.chart(figures.curves(out), "listen_curves")
    fig = figures.confusion_of(out)
    if fig is not None:
        left, right = st.columns([3, 2])
        ui.chart(fig, "listen_confusion", left)
        cells = out["confusion"]["rows"]
        cell = right.selectbox(tr("Play the clips of a cell (true → predicted)"),
                               sorted(cells, key=lambda k: -len(cells[k])), key="listen_cell",
                               format_func=lambda k: tr("{cell} ({n} clips)", n=len(cells[k]), cell=" → ".join(
                                   out["classes"][int(i)] for i in k.split(","))))
        waves = audio.spoken_words().waves if own is None else own.ready().waves
        for r in cells.get(cell, [])[:4]:
            right.audio(userclips.to_wav(waves[r]), format="audio/wav")

if own is None:
    st.subheader(tr("The embedding map: pretrained vs random weights"))
    by = st.radio(tr("Colour by"), MAP_BY, format_func={o: tr(o) for o in MAP_BY}.get, horizontal=True,
                  key="listen_map_by")
    if st.button(tr("Draw the map"), key="listen_map"):
        ds = audio.spoken_words()
        rows = ds.rows(cfg.language)
        points = {tr(name): figures.pca2(audio.embed(ds.feats[rows], backbones.speech_encoder(pre)).numpy())
                  for name, pre in ((N_("pretrained on speech"), True), (N_("random weights"), False))}
        labels = [(ds.words if by == "word" else ds.voices)[i] for i in rows]
        ui.chart(figures.embedding_map(points, labels, tr(MAP_TITLE[cfg.language], by=tr(by))), "listen_map_fig")

    st.subheader(tr("A language shift: English → Spanish"))
    st.markdown(tr("A small CNN on log-mel spectrograms is first trained here on the 20 English words, then moved to "
                   "the Spanish digits. Does what it learnt of English carry over to a language it never heard?"))
    scfg = shift.ShiftConfig(shots=cfg.shots, seed=cfg.seed, val_voices=cfg.val_voices)
    moved = ui.run_button("listen_shift", tr("Run the shift"), "audio-shift", scfg,
                          results=S.setdefault("listen_shifts", {}), button_key="listen_shift_run",
                          start=N_("Pretraining the CNN on English…"))
    if moved is not None:
        ui.verdict(moved.verdict())
        ui.chart(figures.shift_bars(moved.to_json()), "listen_shift_bars")
    st.caption(tr("Accuracy is on voices never heard in training; the interval is over seeds (each its own split)."))
else:
    st.download_button(tr("Download your clips as a zip (upload it later)"), own.to_zip, file_name="my_clips.zip",
                       mime="application/zip", key="listen_download", on_click="ignore")
