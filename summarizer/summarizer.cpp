// The summarizer arrives with issue 6; this target exists so the layout and its dependency rules are in place.
namespace cg::summarizer {
int placeholder = 0;
}
