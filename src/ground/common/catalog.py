"""Every dataset, base model and benchmark the recipes know: where each comes from, what it holds.

    >>> from ground.common.catalog import DATASETS, MODELS
    >>> DATASETS["charades_sta"].files("test")
    ('charades_sta_test.txt', 'Charades_v1_test.csv')
    >>> DATASETS["flickr30k_entities"].hub is None      # not on the hub: placed by hand
    True

One table serves the download step (what to fetch, from which repo, with which `allow_patterns`),
the convert step (which converter reads which published files), `ground data check` (what is
missing and how to get it) and the Snakefile (which files the download step promises). Light to
import: no torch, no hub client.

Layout under `download.root`:

    raw/<dataset>/<published annotation files>     what the converter reads, names as upstream
    media/<media folder>/...                       images, videos, audio (archives extracted here)
    models/<model>/                                base models (Hugging Face folders)

Hub revisions are not here: they are pinned per repo in the recipe's `download.revisions`.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTHORS_REPO = "zwli/GroundingGPT"  # the authors' converted training data (a dataset repo)
AUTHORS_DIR = "authors"  # raw/authors/<path in AUTHORS_REPO>, e.g. raw/authors/Stage2/refcoco.json
AUTHORS_CONVERTER = "ground.convert.sources.authors:convert_authors"


@dataclass(frozen=True)
class HubFiles:
    """Files of one hub repo: `patterns` are `allow_patterns`; files matching `archives` are
    extracted into the dataset's media folder after download (zip, tar, tar.gz)."""

    repo: str
    patterns: tuple[str, ...]
    repo_type: str = "dataset"  # dataset | model
    archives: tuple[str, ...] = ()
    gated: bool = False  # the repo asks users to accept its terms before downloading


@dataclass(frozen=True)
class Dataset:
    """A source of training or evaluation data.

    `annotations` names the published files the converter reads, `{split}` filled in; they live
    in `raw/<name>/`. `hub` fetches them (and possibly media archives) when the hub carries
    them; otherwise, and for media the hub lacks, `manual` says where to get what and where to
    put it. `converter` is `module:function` taking `(dataset, raw_dir, split, seed)` and
    returning `(records, rejected)`; media paths in records are relative to `media/<media>/`.
    `authors` is the file of `AUTHORS_REPO` holding the authors' conversion of this dataset.
    """

    name: str
    stage: int  # the training stage the paper uses it in (0: evaluation only)
    modality: str  # image | video | audio | audio+image
    annotations: tuple[str, ...]
    converter: str
    media: str
    hub: HubFiles | None = None
    manual: str = ""
    authors: str = ""
    splits: tuple[str, ...] = ("train",)
    train: str = "train"  # the published split the pipeline's `train` split is
    any_files: bool = False  # any subset of `annotations` will do (e.g. WavCaps' four sources)

    def published(self, split: str) -> str:
        """The upstream name of one of our splits (`train` may be called otherwise upstream)."""
        published = self.train if split == "train" else split
        if published not in self.splits:
            raise ValueError(f"{self.name} has no split {split!r}; it has {list(self.splits)}")
        return published

    def has(self, split: str) -> bool:
        return (self.train if split == "train" else split) in self.splits

    def files(self, split: str) -> tuple[str, ...]:
        return tuple(name.format(split=self.published(split)) for name in self.annotations)


@dataclass(frozen=True)
class Model:
    """A base model folder under `models/<name>/`."""

    name: str
    hub: HubFiles | None = None
    manual: str = ""


_IMAGE = "ground.convert.sources.image"
_VIDEO = "ground.convert.sources.video"
_AUDIO = "ground.convert.sources.audio"
_EVAL = "ground.convert.sources.evalsets:convert_raw_dir"
_CONV = "ground.convert.sources.conversations"

_COCO = (
    "COCO train2014 images: download http://images.cocodataset.org/zips/train2014.zip and "
    "unzip it into {root}/media/coco/ (giving media/coco/train2014/*.jpg)"
)
_REFER = (
    "the refer toolkit's annotations (https://github.com/lichengunc/refer, data/): put "
    "refs(unc).p / refs(umd).p and instances.json of the dataset in {root}/raw/{name}/"
)

DATASETS_LIST: tuple[Dataset, ...] = (
    # ------------------------------------------------------------------ stage 1: captions
    Dataset(
        "llava_pretrain", 1, "image", ("blip_laion_cc_sbu_558k.json",),
        f"{_CONV}:convert_llava_pretrain", "llava_pretrain",
        hub=HubFiles("liuhaotian/LLaVA-Pretrain", ("blip_laion_cc_sbu_558k.json", "images.zip"),
                     archives=("images.zip",)),
    ),
    Dataset(
        "valley_pretrain", 1, "video", ("train.json",),
        f"{_CONV}:convert_valley_pretrain", "webvid",
        hub=HubFiles("luoruipu1/Valley-webvid2M-Pretrain-703K", ("train.json",)),
        manual="WebVid videos are not redistributed: fetch the ids listed in train.json from "
        "WebVid-10M and put them in {root}/media/webvid/<video path of train.json>",
    ),
    Dataset(
        "wavcaps", 1, "audio", ("as_final.json", "bbc_final.json", "fsd_final.json", "sb_final.json"),
        f"{_AUDIO}:convert_wavcaps", "wavcaps", any_files=True,
        hub=HubFiles("cvssp/WavCaps", ("json_files/*/*.json", "Zip_files/*/*.zip"),
                     archives=("Zip_files/*/*.zip",)),
        authors="Stage1/Wavecaps.json",
    ),
    # ------------------------------------------------------------------ stage 2: fine-grained
    Dataset(
        "refcoco", 2, "image", ("refs(unc).p", "instances.json"), _EVAL, "coco",
        manual=f"{_REFER}; {_COCO}", authors="Stage2/refcoco.json",
        splits=("train", "val", "testA", "testB"),
    ),
    Dataset(
        "refcoco+", 2, "image", ("refs(unc).p", "instances.json"), _EVAL, "coco",
        manual=f"{_REFER}; {_COCO}", splits=("train", "val", "testA", "testB"),
    ),
    Dataset(
        "refcocog", 2, "image", ("refs(umd).p", "instances.json"), _EVAL, "coco",
        manual=f"{_REFER}; {_COCO}", splits=("train", "val", "test"),
    ),
    Dataset(
        "visual_genome", 2, "image", ("region_descriptions.json", "image_data.json"),
        f"{_IMAGE}:convert_visual_genome", "visual_genome",
        manual="https://homes.cs.washington.edu/~ranjay/visualgenome/api.html: put "
        "region_descriptions.json and image_data.json in {root}/raw/visual_genome/, the images "
        "(VG_100K, VG_100K_2) in {root}/media/visual_genome/",
        authors="Stage2/visual_genome.json",
    ),
    Dataset(
        "didemo", 2, "video", ("{split}_data.json",), f"{_VIDEO}:convert_didemo", "didemo",
        manual="https://github.com/LisaAnne/TemporalLanguageRelease: put {split}_data.json in "
        "{root}/raw/didemo/ and the videos in {root}/media/didemo/",
        authors="Stage2/didemo.json", splits=("train", "val", "test"),
    ),
    Dataset(
        "charades_sta", 2, "video", ("charades_sta_{split}.txt", "Charades_v1_{split}.csv"),
        _EVAL, "charades",
        manual="https://github.com/jiyanggao/TALL (charades_sta_{split}.txt) and "
        "https://prior.allenai.org/projects/charades (Charades_v1_{split}.csv; the 480p videos "
        "into {root}/media/charades/Charades_v1_480/): files in {root}/raw/charades_sta/",
        authors="Stage2/charades_sta.json", splits=("train", "test"),
    ),
    Dataset(
        "hirest", 2, "video", ("all_data_{split}.json",), f"{_VIDEO}:convert_hirest", "hirest",
        manual="https://github.com/j-min/HiREST (data/splits/all_data_{split}.json) into "
        "{root}/raw/hirest/, the videos into {root}/media/hirest/",
        splits=("train", "val", "test"),
    ),
    Dataset(
        "vggss", 2, "audio+image", ("vggss.json",), _EVAL, "vggss",
        manual="https://github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way (vggss.json) "
        "into {root}/raw/vggss/; VGGSound clips as media/vggss/audio/<file>.wav and their "
        "centre frames as media/vggss/frames/<file>.jpg",
        authors="Stage2/vggss.json", splits=("train", "test"),
    ),
    # ------------------------------------------------------------------ stage 3: instructions
    Dataset(
        "flickr30k_entities", 3, "image", ("Sentences", "Annotations", "{split}.txt"),
        f"{_IMAGE}:convert_flickr30k_entities", "flickr30k",
        manual="https://github.com/BryanPlummer/flickr30k_entities (annotations.zip: the "
        "Sentences/ and Annotations/ folders and {split}.txt) into {root}/raw/flickr30k_entities/; "
        "the Flickr30K images (by request, https://shannon.cs.illinois.edu/DenotationGraph/) "
        "into {root}/media/flickr30k/",
        authors="Stage3/flickr30k_detail.json", splits=("train", "val", "test"),
    ),
    Dataset(
        "vcr", 3, "image", ("{split}.jsonl",), "ground.convert.sources.vcr:convert_vcr", "vcr",
        manual="https://visualcommonsense.com/download/ (terms must be accepted): "
        "{split}.jsonl into {root}/raw/vcr/, vcr1images/ (with its per-image .json metadata) "
        "into {root}/media/vcr/",
        splits=("train", "val"),
    ),
    Dataset(
        "activitynet_captions", 3, "video", ("{split}.json",),
        f"{_VIDEO}:convert_activitynet_captions", "activitynet",
        manual="https://cs.stanford.edu/people/ranjaykrishna/densevid/ (train.json, val_1.json "
        "as val) into {root}/raw/activitynet_captions/, the ActivityNet videos into "
        "{root}/media/activitynet/",
        authors="Stage3/activitycaptions.json", splits=("train", "val"),
    ),
    Dataset(
        "clotho", 3, "audio", ("clotho_captions_{split}.csv",), f"{_AUDIO}:convert_clotho",
        "clotho",
        manual="https://zenodo.org/records/4783391: clotho_captions_{split}.csv into "
        "{root}/raw/clotho/, the {split} WAV files into {root}/media/clotho/{split}/",
        authors="Stage3/Clotho.json", splits=("development", "validation", "evaluation"),
        train="development",
    ),
    Dataset(
        "llava_mix665k", 3, "image", ("llava_v1_5_mix665k.json",),
        f"{_CONV}:convert_llava_mix665k", "llava_mix",
        hub=HubFiles("liuhaotian/LLaVA-Instruct-150K", ("llava_v1_5_mix665k.json",)),
        manual="the images of its sources (COCO train2017, GQA, OCR-VQA, TextVQA, VG) into "
        "{root}/media/llava_mix/<source folder>/ as LLaVA-1.5's README lays them out",
    ),
    Dataset(
        "valley_instruct", 3, "video", ("valley_instruct_73k.json",),
        f"{_CONV}:convert_valley_instruct", "valley_instruct",
        hub=HubFiles("luoruipu1/Valley-Instruct-73k", ("valley_instruct_73k.json",)),
        manual="the source videos (VATEX, jukinmedia) into {root}/media/valley_instruct/",
    ),
    Dataset(
        "videochat_11k", 3, "video", ("videochat_instruct_11k.json",),
        f"{_CONV}:convert_videochat_11k", "videochat",
        manual="https://github.com/OpenGVLab/Ask-Anything (videochat_instruct_11k.json) into "
        "{root}/raw/videochat_11k/, the WebVid / VideoChat videos into {root}/media/videochat/",
    ),
)
DATASETS: dict[str, Dataset] = {d.name: d for d in DATASETS_LIST}

MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("vicuna-7b-v1.5", HubFiles("lmsys/vicuna-7b-v1.5", ("*.json", "*.model", "*.safetensors"),
                                         repo_type="model")),  # fmt: skip
        Model("clip-vit-large-patch14-336",
              HubFiles("openai/clip-vit-large-patch14-336", ("*.json", "*.txt", "*.safetensors"),
                       repo_type="model")),  # fmt: skip
        Model("blip2-opt-2.7b", HubFiles("Salesforce/blip2-opt-2.7b", ("*.json", "*.safetensors"),
                                         repo_type="model")),  # fmt: skip
        # The authors' released GroundingGPT-7B (a model repo named like their data's dataset
        # repo): the `import` step turns it into our checkpoint and frozen encoders.
        Model("groundinggpt-release", HubFiles("zwli/GroundingGPT",
              ("*.json", "*.model", "*.bin", "*.safetensors"), repo_type="model")),  # fmt: skip
        Model("imagebind-huge-audio", manual=(
            "download https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth, then save its "
            "audio branch as the transformers folder the audio encoder loads (config.json + "
            "model.safetensors in {root}/models/imagebind-huge-audio/): python -c \"from "
            "ground.model.imagebind import ImageBindAudioConfig as C, ImageBindAudioModel as M, "
            "load_imagebind_audio_weights as load; m = M(C()); load(m, 'imagebind_huge.pth'); "
            "m.save_pretrained('{root}/models/imagebind-huge-audio')\"")),  # fmt: skip
    )
}


def dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None


def hub_repos(datasets: list[str], models: list[str] = ()) -> list[str]:
    """The hub repos a recipe's datasets and models come from (for its pinned revisions)."""
    sources = [dataset(d).hub for d in datasets] + [MODELS[m].hub for m in models]
    return sorted({s.repo for s in sources if s is not None})


def authors_files(datasets: list[str]) -> list[str]:
    """The files of AUTHORS_REPO holding the authors' conversion of `datasets` (convert.authors)."""
    missing = [d for d in datasets if not dataset(d).authors]
    if missing:
        raise ValueError(f"convert.authors: the authors published no conversion of {missing}")
    return sorted({dataset(d).authors for d in datasets})


# ----------------------------------------------------------------------- the benchmarks


@dataclass(frozen=True)
class Benchmark:
    name: str
    dataset: str  # converted dataset (results/convert/<dataset>/<split>.jsonl)
    splits: tuple[str, ...]
    task: str  # records of this task are scored
    kind: str  # span | box | ciou
    headline: str  # the metric shown first (and compared against the paper)

    def data_files(self, splits: tuple[str, ...] | None = None) -> list[str]:
        return [f"results/convert/{self.dataset}/{s}.jsonl" for s in splits or self.splits]


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("charades", "charades_sta", ("test",), "temporal_grounding", "span", "R1@0.5"),
        Benchmark("refcoco", "refcoco", ("val", "testA", "testB"), "rec", "box", "Acc@0.5"),
        Benchmark("refcoco+", "refcoco+", ("val", "testA", "testB"), "rec", "box", "Acc@0.5"),
        Benchmark("refcocog", "refcocog", ("val", "test"), "rec", "box", "Acc@0.5"),
        Benchmark("vggss", "vggss", ("test",), "sound_localization", "ciou", "cIoU@0.5"),
        # The demo recipe's synthetic test split: the same metric code as the real benchmarks.
        Benchmark("demo_rec", "demo_image", ("test",), "rec", "box", "Acc@0.5"),
        Benchmark("demo_tg", "demo_video", ("test",), "temporal_grounding", "span", "R1@0.5"),
        Benchmark("demo_sl", "demo_audio", ("test",), "sound_localization", "ciou", "cIoU@0.5"),
    )
}

# GroundingGPT's published scores (paper; ../shared/reference/groundinggpt-facts.md).
PAPER: dict[tuple[str, str], dict[str, float]] = {
    ("charades", "test"): {"R1@0.5": 29.6, "R1@0.7": 11.9},
    ("refcoco", "val"): {"Acc@0.5": 88.02},
    ("refcoco", "testA"): {"Acc@0.5": 91.55},
    ("refcoco", "testB"): {"Acc@0.5": 82.47},
    ("refcoco+", "val"): {"Acc@0.5": 81.61},
    ("refcoco+", "testA"): {"Acc@0.5": 87.18},
    ("refcoco+", "testB"): {"Acc@0.5": 73.18},
    ("refcocog", "val"): {"Acc@0.5": 81.67},
    ("refcocog", "test"): {"Acc@0.5": 81.99},
}


def benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r} (benchmarks: {', '.join(BENCHMARKS)})") from None
