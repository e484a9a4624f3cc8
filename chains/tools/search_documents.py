"""search_documents: the passages of the conversation's indexed documents closest to a query, numbered for citation
(the turn engine binds the search: embeddings of the query, cosine similarity over the stored passages)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from chains.tools.spec import ToolContext, ToolFailed, ToolSpec


class SearchDocumentsArgs(BaseModel):
    query: str = Field(min_length=1, max_length=2000,
                       description="what to look for in the attached documents, in a few words or a question")


def search_documents(context: ToolContext, args: SearchDocumentsArgs) -> str:
    if context.search_documents is None:
        raise ToolFailed("no_documents", "No indexed document is attached to this conversation.")
    return context.search_documents(args.query)


SEARCH_DOCUMENTS = ToolSpec(
    name="search_documents",
    description=("Search the documents attached to this conversation. Returns numbered passages with file and "
                 "page or section; cite the ones you use as [n]."),
    args=SearchDocumentsArgs, run=search_documents, needs_documents=True)
