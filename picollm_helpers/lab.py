"""Section 9. Plots and widgets: the sampling lab, sliders that resample text and show the nucleus.

`sampling_lab(models, enc)` returns one ipywidgets box. Every change of model, prompt, p,
temperature or seed draws a new continuation and redraws the next-token distribution after
the prompt, with the nucleus coloured and its cut-off marked. The chart is a PNG rendered
from one matplotlib Figure kept by the lab, so it works the same with or without a display.
"""

from __future__ import annotations

import html
import io

import ipywidgets as widgets
from matplotlib.figure import Figure

from .plots import next_token_summary, plot_next_token_distribution
from .sampling import Decoding, generate_tokens, next_token_log_probs

MAX_SEED = 2**31 - 1


class SamplingLab(widgets.VBox):
    """The lab's controls, its text and its chart; the attributes are public so that tests can drive it."""

    top_n = 30  # the most likely next tokens the chart shows

    def __init__(self, models: dict, enc, prompt: str = "Once upon a", p: float = 0.9, temperature: float = 1.0,
                 seed: int = 0, max_new_tokens: int = 20, model: str | None = None):
        if not models:
            raise ValueError("sampling_lab needs at least one model: pass {'name': model}, "
                             "e.g. {'lstm': h.load_checkpoint(h.CHECKPOINTS_DIR / 'lstm.pt')}.")
        if model is not None and model not in models:
            raise ValueError(f"model={model!r} is not among the lab's models: {', '.join(models)}.")
        self.models, self.enc, self.max_new_tokens = models, enc, max_new_tokens
        wide = {"description_width": "initial"}
        self.model_dropdown = widgets.Dropdown(options=list(models), value=model or next(iter(models)),
                                               description="model", style=wide)
        self.prompt_box = widgets.Text(value=prompt, description="prompt", continuous_update=False, style=wide,
                                       layout=widgets.Layout(width="28em"))
        self.p_slider = widgets.FloatSlider(value=p, min=0.01, max=1.0, step=0.01, description="p",
                                            continuous_update=False, readout_format=".2f", style=wide)
        self.temperature_slider = widgets.FloatSlider(value=temperature, min=0.1, max=2.0, step=0.05,
                                                      description="temperature", continuous_update=False,
                                                      readout_format=".2f", style=wide)
        self.seed_box = widgets.BoundedIntText(value=seed, min=0, max=MAX_SEED, description="seed", style=wide,
                                               layout=widgets.Layout(width="12em"))
        self.resample_button = widgets.Button(description="Resample", tooltip="draw again with the next seed")
        self.text_output = widgets.HTML()
        self.summary = widgets.HTML()
        self.chart = widgets.Image(format="png")
        self.p_slider.add_class("picollm-lab-p")
        self.text_output.add_class("picollm-lab-text")
        self.figure = Figure(figsize=(10, 3.8), layout="constrained")
        self.axes = self.figure.add_subplot()
        self.text = ""
        for control in (self.model_dropdown, self.prompt_box, self.p_slider, self.temperature_slider, self.seed_box):
            control.observe(self.refresh, names="value")
        self.resample_button.on_click(self.resample)
        super().__init__([
            widgets.HBox([self.model_dropdown, self.prompt_box]),
            widgets.HBox([self.p_slider, self.temperature_slider]),
            widgets.HBox([self.seed_box, self.resample_button]),
            self.text_output, self.summary, self.chart,
        ])
        self.refresh()

    def resample(self, _button=None) -> None:
        """The next seed: a new draw that anyone can reproduce by typing that seed."""
        self.seed_box.value = (self.seed_box.value + 1) % (MAX_SEED + 1)

    def refresh(self, _change=None) -> None:
        """Draw a new continuation and redraw the chart from the controls' current values."""
        model = self.models[self.model_dropdown.value]
        prompt, p, temperature = self.prompt_box.value, self.p_slider.value, self.temperature_slider.value
        prompt_ids = self.enc.encode_ordinary(prompt)
        try:
            generation = generate_tokens(model, prompt_ids, self.max_new_tokens,
                                         Decoding(top_p=p, temperature=temperature), seed=self.seed_box.value)
        except ValueError as error:
            self.text = ""
            self.text_output.value = f"<b>Cannot sample:</b> {html.escape(str(error))}"
            self.summary.value = ""
            return
        continuation = self.enc.decode(generation.tokens)
        self.text = prompt + continuation
        self.text_output.value = (f"<pre style='white-space: pre-wrap; font-size: 1.1em'><b>{html.escape(prompt)}</b>"
                                  f"{html.escape(continuation)}</pre>")
        mean_logprob = sum(generation.logprobs) / len(generation.logprobs)
        unknown = "".join(self.enc.decode([i]) for i in generation.unknown_prompt_ids)
        never_seen = (f"; the model never saw {html.escape(repr(unknown))} in training and reads it as its bucket"
                      if unknown else "")
        self.summary.value = (f"{len(generation.tokens)} new tokens, mean log-probability under the model "
                              f"{mean_logprob:.2f} nats{never_seen}")
        self.draw_distribution(model, prompt_ids, p, temperature)

    def draw_distribution(self, model, prompt_ids: list[int], p: float, temperature: float) -> None:
        self.axes.clear()
        summary = next_token_summary(next_token_log_probs(model, prompt_ids), self.enc, p, temperature, self.top_n)
        plot_next_token_distribution(summary, ax=self.axes)
        png = io.BytesIO()
        self.figure.savefig(png, format="png", dpi=80)
        self.chart.value = png.getvalue()


def sampling_lab(models: dict, enc, prompt: str = "Once upon a", **options) -> SamplingLab:
    """The sampling lab for these models ({name: model}); options: p, temperature, seed, max_new_tokens,
    and model (the name it opens on; the first by default)."""
    return SamplingLab(models, enc, prompt, **options)
