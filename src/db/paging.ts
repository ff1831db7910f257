/** The rows a page-numbered list (PageQuery's `page`, from 1, and `page_size`) skips before its page. */
export const pageOffset = (page: number, pageSize: number): number => (page - 1) * pageSize;
