"""AppTest of the frame (app.py): navigation over pages/, default page, sidebar."""
from streamlit.testing.v1 import AppTest

from app_helpers import ROOT, TIMEOUT, no_exception, texts


def test_app_opens_on_the_train_page_with_the_sidebar(fake_jobs):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    no_exception(at)
    assert at.title[0].value == "Train a model across a domain shift"
    assert "Lepton" in texts(at) and "knowledge base" in texts(at)


def test_lesson_flag_is_shown_in_the_sidebar(fake_jobs):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["lesson"] = "1"
    at.run()
    no_exception(at)
    assert "Lesson mode" in texts(at)
    assert len(at.expander) == 0


def test_every_page_file_is_in_the_navigation():
    app = (ROOT / "app.py").read_text()
    for page in sorted((ROOT / "pages").glob("*.py")):
        assert f'"pages/{page.name}"' in app, f"{page.name} is not in st.navigation"
