import streamlit as st
import torch

from app_pages import record, ui
from tl_core import audio, backbones, userclips
from tl_core.experiments import audio as exp
from tl_core.experiments import audio_shift as shift
from tl_core.plots import audio as figures

C, S = exp.AudioConfig, st.session_state

link = ui.page("Machine listening", "listen_",
               "Transfer works for sound too. A **speech encoder pretrained on real speech** (GE2E: a 3-layer LSTM "
               "trained on LibriSpeech and VoxCeleb to tell *speakers* apart) learns new words or voices from a few "
               "clips each. Compare it **frozen** (a new head on its 256-number embedding), with its **last layer** "
               "or **every layer** fine-tuned, and the **same network from scratch**. Validation voices (or words) "
               "are never heard in training.", settings="Listening settings")
with st.sidebar:
    source = st.radio("Clips", ["built-in spoken words", "your own clips"], key="listen_source", horizontal=True)
    picked = ui.widgets(C, ("task", "language", "conditions", "shots", "seeds", "epochs"), "listen_")
    ok, note = backbones.weights_status(audio.ENCODER)
    (st.caption if ok else st.error)(("Encoder: " if ok else "") + note)
picked.update(ui.more_settings(C, ("val_voices", "val_words", "lr", "encoder_lr"), "listen_"))
link.report()
cfg = C(**picked)
own = record.clips() if source == "your own clips" else None
if source == "your own clips" and own is None:
    st.stop()

st.subheader("Listen")
if own is None:
    ds = audio.spoken_words()
    left, mid, right = st.columns([1, 2, 3])
    word = left.selectbox("Word", audio.vocabulary(cfg.language), key="listen_word")
    voice = mid.selectbox("Voice (espeak-ng accent + variant)", audio.voices_of(cfg.language), key="listen_voice")
    row = next(i for i in range(len(ds)) if ds.words[i] == word and ds.voices[i] == voice)
    wave, feats, title = ds.waves[row], ds.feats[row], f"“{word}” said by {voice}"
else:
    row = st.selectbox("Clip", range(len(own)), format_func=lambda i: f"{own.classes[own.labels[i]]} · {own.names[i]}",
                       key="listen_own_clip") if len(own) else None
    if row is None:
        st.info("Record a clip to hear it back and see its spectrogram.")
        st.stop()
    wave, title = own.waves[row], f"“{own.classes[own.labels[row]]}”"
    feats = torch.from_numpy(audio.features(wave))
    right = st
right.audio(userclips.to_wav(wave), format="audio/wav")
ui.chart(figures.spectrogram(audio.log_mel(feats).numpy(), f"Log-mel spectrogram of {title}: what the encoder "
                             f"hears (40 mel bands, 10 ms a step)"), "listen_spec")

st.subheader("Pretrained vs scratch, on a few clips")
problems = own.ready().problems() if own is not None else []
for p in problems:
    st.error(p)
kind = "audio" if own is None else "audio-own"
inputs = {"clips": (own.fingerprint, own.to_bytes)} if own is not None else None
key = cfg if own is None else (own.fingerprint, cfg)
result = ui.run_button("listen", "Train", kind, cfg, results=S.setdefault("listen_results", {}), key=key,
                       inputs=inputs, button_key="listen_train", disabled=bool(problems),
                       start="Reading the clips and the encoder…")
if result is None:
    st.info("Press **Train** to compare the conditions. The frozen encoder is the quickest (its embeddings are "
            "computed once); scratch is the slowest (its LSTM steps through every 10 ms of every clip).")
else:
    ui.verdict(result.verdict())
    out = result.to_json()
    d = out["data"]
    st.caption(f"{d['clips']} clips, {len(out['classes'])} classes · training voices: {len(d['voices_train'])}, "
               f"validation voices: {len(d['voices_val'])} · {result.device} · {result.seconds:.0f} s (frozen "
               f"layers' outputs: {result.cached_seconds:.1f} s, once for every seed)")
    ui.chart(figures.accuracy_bars(out), "listen_bars")
    record.download_model(result)
    ui.chart(figures.curves(out), "listen_curves")
    fig = figures.confusion_of(out)
    if fig is not None:
        left, right = st.columns([3, 2])
        ui.chart(fig, "listen_confusion", left)
        cells = out["confusion"]["rows"]
        cell = right.selectbox("Play the clips of a cell (true → predicted)",
                               sorted(cells, key=lambda k: -len(cells[k])), key="listen_cell",
                               format_func=lambda k: " → ".join(out["classes"][int(i)] for i in k.split(",")) +
                               f" ({len(cells[k])} clips)")
        waves = audio.spoken_words().waves if own is None else own.ready().waves
        for r in cells.get(cell, [])[:4]:
            right.audio(userclips.to_wav(waves[r]), format="audio/wav")

if own is None:
    st.subheader("The embedding map: pretrained vs random weights")
    by = st.radio("Colour by", ["word", "voice"], horizontal=True, key="listen_map_by")
    if st.button("Draw the map", key="listen_map"):
        ds = audio.spoken_words()
        rows = ds.rows(cfg.language)
        points = {name: figures.pca2(audio.embed(ds.feats[rows], backbones.speech_encoder(pre)).numpy())
                  for name, pre in (("pretrained on speech", True), ("random weights", False))}
        labels = [(ds.words if by == "word" else ds.voices)[i] for i in rows]
        ui.chart(figures.embedding_map(points, labels, f"Every {audio.LANGUAGES[cfg.language].split(' (')[0]} clip's "
                                       f"256-d embedding, projected to 2-D (PCA), coloured by {by}"), "listen_map_fig")

    st.subheader("A language shift: English → Spanish")
    st.markdown("A small CNN on log-mel spectrograms is first trained here on the 20 English words, then moved to the "
                "Spanish digits. Does what it learnt of English carry over to a language it never heard?")
    scfg = shift.ShiftConfig(shots=cfg.shots, seed=cfg.seed, val_voices=cfg.val_voices)
    moved = ui.run_button("listen_shift", "Run the shift", "audio-shift", scfg,
                          results=S.setdefault("listen_shifts", {}), button_key="listen_shift_run",
                          start="Pretraining the CNN on English…")
    if moved is not None:
        ui.verdict(moved.verdict())
        ui.chart(figures.shift_bars(moved.to_json()), "listen_shift_bars")
    st.caption("Accuracy is on voices never heard in training; the interval is over seeds (each its own split).")
else:
    st.download_button("Download your clips as a zip (upload it later)", own.to_zip, file_name="my_clips.zip",
                       mime="application/zip", key="listen_download", on_click="ignore")
