import os
import subprocess

import pytest
import torch

from lsrec_hf import ItemCatalog, LSRecForSequentialRecommendation
from lsrec_hf.data import fetch_ml100k_offline, load_data
from lsrec_hf.data.movielens import ML100K_GENRES
from lsrec_hf.processing.sequences import build_user_sequences, leave_one_out


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_MODEL = ["--hidden_size", "16", "--intermediate_size", "32", "--num_hidden_layers", "1",
               "--segment_length", "20", "--memory_length", "20", "--batch_size", "32", "--warmup_steps", "5"]

# A model and a run of a few seconds, for recipe tests in-process (with `tiny_table`).
TINY = ["--text_encoder", "none", "--hidden_size", "8", "--intermediate_size", "16", "--num_hidden_layers", "1",
        "--segment_length", "4", "--memory_length", "4", "--batch_size", "8", "--warmup_steps", "1"]


def tiny_table(path, sep=","):
    """12 users with 6 events each over 12 items, as a table file (`user_id, item_id, timestamp`)."""
    rows = [sep.join([f"u{u}", f"i{(u * 3 + t) % 12}", str(t)]) for u in range(12) for t in range(6)]
    path.write_text(sep.join(["user_id", "item_id", "timestamp"]) + "\n" + "\n".join(rows) + "\n")
    return str(path)


def run(command, env_extra=None):
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models: one thread is faster than two competing for a shared CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def save_tiny_model(path, titles, seed=0, **config):
    """A small random LSRec model with a catalog of `len(titles)` items (ids m0, m1, ...), saved to `path`.

    `config`: more `LSRecConfig` arguments (e.g. `context_vocab` and `scenario_feature`)."""
    torch.manual_seed(seed)
    num_items = len(titles)
    catalog = ItemCatalog([f"m{i}" for i in range(num_items)], list(titles), [f"text {i}" for i in range(num_items)])
    model = LSRecForSequentialRecommendation.from_catalog(
        catalog, torch.zeros(num_items, 8), hidden_size=16, num_attention_heads=2, intermediate_size=32,
        segment_length=4, memory_length=8, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        initializer_range=0.3, **config)
    model.model.embeddings.content_embeddings.normal_()  # random item texts
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def ml100k_slice(tmp_path_factory):
    """The first 120 users of the real ML-100K, in RecBole atomic files (all their events, every item)."""
    source = fetch_ml100k_offline()
    target = tmp_path_factory.mktemp("ml-100k-slice")
    with open(os.path.join(source, "ml-100k.inter"), encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    keep = [r for r in rows if int(r.split("\t")[0]) <= 120]
    (target / "ml-100k-slice.inter").write_text("\n".join([header, *keep]) + "\n", encoding="utf-8")
    for suffix in ("item", "user"):
        with open(os.path.join(source, f"ml-100k.{suffix}"), encoding="utf-8") as f:
            (target / f"ml-100k-slice.{suffix}").write_text(f.read(), encoding="utf-8")
    return str(target)


# GroupLens MovieLens layouts in miniature (tests/test_data_movielens.py, tests/test_hostile_input.py).
def item_line(item_id, title, date, genres):
    flags = ["1" if g in genres else "0" for g in ML100K_GENRES]
    return "|".join([str(item_id), title, date, "", f"http://imdb/{item_id}", *flags]) + "\n"


def write_ml100k(folder, with_genre_file=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n2\t3\t1\t888550000\n")
    items = item_line(1, "Toy Story (1995)", "01-Jan-1995", ["Animation", "Children's", "Comedy"])
    items += item_line(2, "Café (1999)", "01-Jan-1999", ["Drama"])
    items += item_line(3, "unknown", "05-May-1996", ["unknown"])
    (folder / "u.item").write_bytes(items.encode("latin-1"))
    if with_genre_file:
        (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n")
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder


def write_ml1m(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::260::3::978302109\n2::1193::4::978298413\n")
    movies = "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
    movies += "260::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Sci-Fi\n"
    movies += "7::Café au lait (1993)::Comedy\n"
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    return folder


def write_csv_layout(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,11,4.5,964982703\n1,12,3.0,964981247\n2,11,2.0,964982224\n"
    )
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n11,"American President, The (1995)",Comedy|Drama|Romance\n12,Babylon 5,(no genres listed)\n'
    )
    return folder


@pytest.fixture(scope="module")
def slice_splits_and_model(ml100k_slice):
    """The real ML-100K slice split leave-one-out by time, and an untrained id-only model of its catalog (for the
    priors' calibration tests)."""
    data = load_data(ml100k_slice)
    splits = leave_one_out(build_user_sequences(data.interactions, data.catalog))
    torch.manual_seed(0)
    model = LSRecForSequentialRecommendation.from_catalog(
        data.catalog, None, hidden_size=16, num_attention_heads=2, intermediate_size=32,
        num_hidden_layers=1, segment_length=8, memory_length=8)
    return splits, model.eval()
